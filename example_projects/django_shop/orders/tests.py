"""The shop's tests, on the test toolkit: checkouts run in the test's own thread and
transaction (no ``durable_worker``), two weeks of waiting for the carrier take no time, and a
crash at any step of the checkout still charges, reserves and ships the order once.

    python manage.py test orders
"""

from __future__ import annotations

import time

from django.test import override_settings

from django_durable.testing import DurableTestCase, DurableTransactionTestCase

from .models import Order, Product, checkout_workflow_id
from .workflows import _payment_attempts


class CheckoutMixin:
    def order(self, quantity: int = 2) -> str:
        response = self.client.post("/orders/", {"sku": "widget", "quantity": quantity})
        self.assertEqual(response.status_code, 302)
        return response.url.rstrip("/").rsplit("/", 1)[1]

    def stage(self, ref: str) -> str | None:
        return self.durable.get_event(checkout_workflow_id(ref), "stage", timeout=0)


class CheckoutTests(CheckoutMixin, DurableTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        Product.objects.create(sku="widget", name="Widget", price_cents=250, stock=10)

    def restock(self, stock: int) -> None:
        Product.objects.filter(sku="widget").update(stock=stock)

    @override_settings(SHOP_PAYMENT_FAILURES=2)
    def test_checkout_ships_then_waits_for_the_carrier(self):
        ref = self.order()
        self.durable.run_until_idle(advance_time=False)  # paid, reserved, shipped; now waits
        self.assertEqual(self.stage(ref), "shipped")
        self.assertEqual(_payment_attempts[ref], 3)  # two failures, retried by the step
        page = self.client.get(f"/orders/{ref}/").content.decode()
        self.assertIn("confirm delivery", page)
        self.client.post(f"/orders/{ref}/delivered/")
        result = self.durable.retrieve_workflow(checkout_workflow_id(ref)).result(timeout=10)
        self.assertTrue(result["delivered"])
        self.assertEqual(Order.objects.get(ref=ref).status, "delivered")
        self.assertEqual(Product.objects.get(sku="widget").stock, 8)

    def test_no_delivery_confirmation_in_two_weeks(self):
        started, virtual = time.perf_counter(), self.durable.clock.time()
        ref = self.order()
        result = self.durable.retrieve_workflow(checkout_workflow_id(ref)).result(timeout=10)
        self.assertFalse(result["delivered"])
        self.assertGreaterEqual(self.durable.clock.time() - virtual, 14 * 24 * 3600)
        self.assertLess(time.perf_counter() - started, 5)
        self.assertEqual(Order.objects.get(ref=ref).status, "shipped")

    def test_out_of_stock_fails_the_checkout_without_an_order(self):
        ref = self.order(quantity=11)
        with self.assertRaisesMessage(Exception, "only 10 of widget left"):
            self.durable.retrieve_workflow(checkout_workflow_id(ref)).result(timeout=10)
        self.assertFalse(Order.objects.filter(ref=ref).exists())

    def test_a_crash_at_any_step_charges_reserves_and_delivers_once(self):
        steps = ["charge_payment", "reserve_inventory", "ship", "mark_delivered"]
        self.restock(100)
        placed = 0
        for step in steps:
            for where in ("before", "during", "after"):
                with self.subTest(step=step, where=where):
                    crash = getattr(self.durable, f"crash_{where}")(step)
                    ref = self.order(quantity=1)
                    placed += 1
                    self.durable.run_until_idle(advance_time=False)
                    self.client.post(f"/orders/{ref}/delivered/")
                    self.durable.run_until_idle(advance_time=False)
                    crash.wait(timeout=0)
                    self.durable.recover()  # what the restarted worker does
                    self.durable.run_until_idle(advance_time=False)
                    handle = self.durable.retrieve_workflow(checkout_workflow_id(ref))
                    self.assertTrue(handle.result(timeout=10)["delivered"])
                    self.assertEqual(Order.objects.filter(ref=ref).count(), 1)
                    self.assertEqual(Order.objects.get(ref=ref).status, "delivered")
        self.assertEqual(Product.objects.get(sku="widget").stock, 100 - placed)


class CommittedCheckoutTests(CheckoutMixin, DurableTransactionTestCase):
    """The same checkout with real commits (TransactionTestCase)."""

    def setUp(self) -> None:
        super().setUp()
        Product.objects.create(sku="widget", name="Widget", price_cents=250, stock=3)

    def test_checkout_commits(self):
        ref = self.order(quantity=3)
        self.client.post(f"/orders/{ref}/delivered/")
        result = self.durable.retrieve_workflow(checkout_workflow_id(ref)).result(timeout=10)
        self.assertTrue(result["delivered"])
        self.assertEqual(Product.objects.get(sku="widget").stock, 0)
