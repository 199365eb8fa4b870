"""``@transaction(using=alias)`` in a multi-database project: the step's transaction, its ORM
writes and its checkpoint are all on that alias (select_for_update works there)."""

from __future__ import annotations

import uuid

import pytest
from django.db import connections
from orders.models import Product

from durable_core import start_workflow
from tests.django.testapp import workflows as wf

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "other"])


def outputs(alias: str, workflow_id: str) -> list:
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT step_id FROM durable_transaction_outputs WHERE workflow_id = %s",
            [workflow_id],
        )
        return [r[0] for r in cursor.fetchall()]


def test_transaction_step_on_another_alias_writes_there_once(web_engine):
    sku = f"other-{uuid.uuid4().hex[:8]}"
    Product.objects.using("other").create(sku=sku, name=sku, price_cents=1, stock=5)
    handle = start_workflow(wf.reserve_on_other, sku)
    assert handle.result(timeout=20) == 4
    assert Product.objects.using("other").get(sku=sku).stock == 4
    assert not Product.objects.filter(sku=sku).exists()  # nothing on the default alias
    assert outputs("other", handle.workflow_id) == [1]
    assert outputs("default", handle.workflow_id) == []
    # A replay of the step (as after a crash) returns the recorded output, no second write.
    import types

    ctx = types.SimpleNamespace(workflow_id=handle.workflow_id, engine=web_engine)
    defn = wf.reserve_on_other_step.__durable_step__
    assert web_engine.transactions.run(ctx, 1, defn, (sku,), {}) == (4, None)
    assert Product.objects.using("other").get(sku=sku).stock == 4


def test_an_unknown_alias_is_a_clear_error(web_engine):
    handle = start_workflow(wf.on_missing_alias)
    with pytest.raises(Exception, match="using='nope' is not a DATABASES alias"):
        handle.result(timeout=20)
