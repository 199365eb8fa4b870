"""Plain Django TestCases run with ``--testrunner django_durable.testing.DurableTestRunner``:
the runner's test engine is the process's engine, so the views' workflows run without a
worker (see tests/django/test_toolkit.py)."""

from __future__ import annotations

from django.test import TestCase
from orders.models import Order, Product, checkout_workflow_id

import django_durable
from durable_core.testing import TestEngine


class RunnerEngineTests(TestCase):
    def test_the_process_engine_is_the_test_engine(self):
        Product.objects.create(sku="widget", name="Widget", price_cents=100, stock=5)
        engine = django_durable.get_engine()
        self.assertIsInstance(engine, TestEngine)
        ref = self.client.post("/orders/", {"sku": "widget", "quantity": 2}).url.split("/")[-2]
        engine.run_until_idle(advance_time=False)
        self.assertEqual(Order.objects.get(ref=ref).status, "shipped")
        self.client.post(f"/orders/{ref}/delivered/")
        result = engine.retrieve_workflow(checkout_workflow_id(ref)).result(timeout=10)
        self.assertTrue(result["delivered"])
        self.assertEqual(Product.objects.get(sku="widget").stock, 3)
