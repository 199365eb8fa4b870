"""The checkout: charge, reserve, ship, then wait for the carrier's delivery confirmation.

Discovered by django_durable at startup (every installed app's ``workflows.py``).
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.db.models import F

from durable_core import Queue, recv, set_event, step, transaction, workflow

from .models import Order, Product

# Checkouts are enqueued by the web process and run by `manage.py durable_worker`.
checkouts = Queue("checkouts", worker_concurrency=10)


class PaymentDeclined(Exception):
    pass


class OutOfStock(Exception):
    pass


_payment_attempts: dict[str, int] = {}


@step(retries=3, retry_delay=0.2, backoff=2.0)
def charge_payment(ref: str, amount_cents: int) -> str:
    """Call the payment provider; retried on failure. Its idempotency key is the order ref."""
    attempts = _payment_attempts[ref] = _payment_attempts.get(ref, 0) + 1
    if attempts <= settings.SHOP_PAYMENT_FAILURES:
        raise ConnectionError(f"payment provider unavailable (attempt {attempts})")
    return "pay_" + hashlib.sha256(f"{ref}:{amount_cents}".encode()).hexdigest()[:16]


@transaction
def reserve_inventory(ref: str, sku: str, quantity: int, payment_id: str) -> int:
    """Decrement stock and create the order in one transaction: exactly once."""
    product = Product.objects.select_for_update().get(sku=sku)
    if product.stock < quantity:
        raise OutOfStock(f"only {product.stock} of {sku} left")
    Product.objects.filter(pk=product.pk).update(stock=F("stock") - quantity)
    order = Order.objects.create(ref=ref, product=product, quantity=quantity, payment_id=payment_id)
    return order.pk


@step
def ship(ref: str) -> str:
    """Hand the parcel to the carrier (idempotent: the tracking number derives from the ref)."""
    if settings.SHOP_SHIP_DELAY:
        time.sleep(settings.SHOP_SHIP_DELAY)  # simulates a slow carrier API
    tracking = "TRK" + hashlib.sha256(ref.encode()).hexdigest()[:10].upper()
    Order.objects.filter(ref=ref).update(status=Order.Status.SHIPPED, tracking_number=tracking)
    return tracking


@transaction
def mark_delivered(ref: str) -> None:
    Order.objects.filter(ref=ref).update(status=Order.Status.DELIVERED)


@workflow
def checkout(ref: str, sku: str, quantity: int, amount_cents: int) -> dict:
    payment_id = charge_payment(ref, amount_cents)
    set_event("stage", "paid")
    order_id = reserve_inventory(ref, sku, quantity, payment_id)
    set_event("stage", "reserved")
    tracking = ship(ref)
    set_event("stage", "shipped")
    confirmation = recv("delivery", timeout=14 * 24 * 3600)
    if confirmation is None:
        return {"order_id": order_id, "tracking": tracking, "delivered": False}
    mark_delivered(ref)
    set_event("stage", "delivered")
    return {"order_id": order_id, "tracking": tracking, "delivered": True}
