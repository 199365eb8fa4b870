"""Workflows used by the Django tests (discovered by django_durable's autodiscovery)."""

from __future__ import annotations

from orders.models import Product

from durable_core import (
    Queue,
    close_stream,
    get_event,
    recv,
    scheduled,
    set_event,
    step,
    transaction,
    workflow,
    write_stream,
)

test_queue = Queue("django-tests", priority_enabled=True)


@transaction
def create_product(sku: str) -> int:
    Product.objects.create(sku=sku, name=sku, price_cents=1, stock=1)
    return Product.objects.filter(sku=sku).count()


@transaction
def create_then_fail(sku: str) -> None:
    Product.objects.create(sku=sku, name=sku, price_cents=1, stock=1)
    raise ValueError(f"boom {sku}")


@step
def add(a: int, b: int) -> int:
    return a + b


@workflow
def make_product(sku: str) -> int:
    return create_product(sku)


@workflow
def failing_transaction(sku: str) -> str:
    try:
        create_then_fail(sku)
    except ValueError as exc:
        return f"rolled back: {exc}"
    return "not rolled back"


@workflow
def adder(a: int, b: int) -> int:
    return add(a, b)


@workflow
def parent(a: int) -> int:
    return adder(a, a) + 1


@workflow
def waiter() -> object:
    return recv("go", timeout=600)


@workflow
def step_then_wait(a: int) -> object:
    add(a, a)
    return recv("go", timeout=600)


slow_queue = Queue("django-slow")


@step
def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


@workflow
def napper(seconds: float) -> float:
    return nap(seconds)


@workflow
def always_fails(sku: str) -> None:
    raise ValueError(f"nope {sku}")


@scheduled("0 3 * * *")
@workflow
def nightly_report(scheduled_at, started_at) -> str:
    return f"report for {scheduled_at:%Y-%m-%d}"


@workflow
def chatty(n: int) -> str:
    set_event("progress", {"done": n})
    for i in range(n):
        write_stream("tokens", f"t{i}")
    close_stream("tokens")
    return recv("go", timeout=600)


class Declined(Exception):
    pass


@step
def charge(amount: int) -> None:
    try:
        raise ConnectionError("card network down")
    except ConnectionError as exc:
        raise Declined(f"declined {amount}") from exc


@workflow
def fails_in_a_step(amount: int) -> None:
    charge(amount)


@transaction(using="other")
def reserve_on_other_step(sku: str) -> int:
    product = Product.objects.using("other").select_for_update().get(sku=sku)
    Product.objects.using("other").filter(pk=product.pk).update(stock=product.stock - 1)
    return Product.objects.using("other").get(pk=product.pk).stock


@workflow
def reserve_on_other(sku: str) -> int:
    return reserve_on_other_step(sku)


@transaction(using="nope")
def missing_alias_step() -> None:
    return None


@workflow
def on_missing_alias() -> None:
    missing_alias_step()


_FLAKY_CALLS: dict[str, int] = {}


@step(retries=3, retry_delay=0.01, backoff=1.0)
def flaky_twice(key: str) -> str:
    _FLAKY_CALLS[key] = _FLAKY_CALLS.get(key, 0) + 1
    if _FLAKY_CALLS[key] <= 2:
        raise ConnectionError(f"attempt {_FLAKY_CALLS[key]} failed")
    return "third time lucky"


@workflow
def retried_step(key: str) -> str:
    return flaky_twice(key)


@workflow
def awaits_event(target: str) -> object:
    return get_event(target, "approved", timeout=600)
