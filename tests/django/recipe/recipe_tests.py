"""The testing recipe of docs/django.md, run by ``manage.py test`` (see
tests/django/test_manage_py_test.py): Django's own test runner, no pytest."""

from __future__ import annotations

from django.test import TestCase, TransactionTestCase
from orders.models import Order, Product
from orders.workflows import checkout, checkouts

import django_durable
from django_durable.engine import build_engine


class CheckoutTests(TransactionTestCase):
    """Workflows run for real: committed transactions, a worker engine in the test process."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Serves every queue, as `manage.py durable_worker` would; no schedules in tests.
        cls.worker = build_engine(worker=True, run_scheduler=False).launch()

    @classmethod
    def tearDownClass(cls):
        cls.worker.shutdown(timeout=5)
        super().tearDownClass()

    def test_checkout_runs_to_the_end(self):
        Product.objects.create(sku="mug", name="Mug", price_cents=900, stock=3)
        handle = checkouts.enqueue(checkout, "r1", "mug", 1, 900, workflow_id="checkout-r1")
        self.worker.get_event(handle.workflow_id, "stage", timeout=0)
        while self.worker.get_event(handle.workflow_id, "stage", timeout=10) != "shipped":
            pass
        self.worker.send(handle.workflow_id, {"by": "test"}, topic="delivery")
        self.assertTrue(handle.result(timeout=30)["delivered"])
        self.assertEqual(Product.objects.get(sku="mug").stock, 2)
        self.assertEqual(Order.objects.get(ref="r1").status, "delivered")


class CheckoutViewTests(TestCase):
    """TestCase never commits, so a workflow started inside a test stays unstarted: test
    that the view enqueued it, and test the workflow itself in a TransactionTestCase."""

    @classmethod
    def setUpClass(cls):
        # On SQLite the engine cannot start inside TestCase's transaction: start it first.
        django_durable.get_engine().launch()
        super().setUpClass()

    def test_place_order_enqueues_one_checkout(self):
        Product.objects.create(sku="cap", name="Cap", price_cents=500, stock=1)
        with self.captureOnCommitCallbacks() as callbacks:
            response = self.client.post("/orders/", {"sku": "cap", "quantity": 1})
        self.assertEqual(response.status_code, 302)
        self.assertEqual(len(callbacks), 1)  # the hand-off to the workers, run on commit
