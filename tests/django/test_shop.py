"""The shop example end to end: views, the checkout workflow, a worker."""

from __future__ import annotations

import pytest
from django.test import override_settings
from orders.models import Order, Product
from orders.workflows import _payment_attempts

from tests.django.conftest import wait_for


@pytest.fixture
def widget(transactional_db):
    return Product.objects.create(sku="widget", name="Widget", price_cents=250, stock=10)


@override_settings(SHOP_PAYMENT_FAILURES=2)
def test_checkout_through_the_views(worker, widget, client):
    response = client.post("/orders/", {"sku": "widget", "quantity": 2})
    assert response.status_code == 302
    ref = response.url.rstrip("/").rsplit("/", 1)[1]
    workflow_id = f"checkout-{ref}"
    wait_for(lambda: worker.get_event(workflow_id, "stage", timeout=0) == "shipped", what="ship")
    page = client.get(response.url).content.decode()
    assert "shipped" in page and "confirm delivery" in page
    assert _payment_attempts[ref] == 3  # two failures, retried by the step
    client.post(f"/orders/{ref}/delivered/")
    result = worker.retrieve_workflow(workflow_id).result(timeout=20)
    assert result["delivered"] is True
    order = Order.objects.get(ref=ref)
    assert order.status == "delivered" and order.tracking_number == result["tracking"]
    assert Product.objects.get(sku="widget").stock == 8


def test_out_of_stock_fails_the_checkout_without_an_order(worker, widget, client):
    response = client.post("/orders/", {"sku": "widget", "quantity": 11})
    ref = response.url.rstrip("/").rsplit("/", 1)[1]
    handle = worker.retrieve_workflow(f"checkout-{ref}")
    with pytest.raises(Exception, match="only 10 of widget left"):
        handle.result(timeout=20)
    assert not Order.objects.filter(ref=ref).exists()
    assert Product.objects.get(sku="widget").stock == 10
