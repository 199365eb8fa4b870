"""The JSON serializer round-trips every supported type and rejects everything else with
SerializationError (property tests)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import math
import uuid

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durable_core.errors import SerializationError
from durable_core.serialization import JSONSerializer, encode_arguments

SER = JSONSerializer()
FAST = settings(max_examples=150, deadline=None)


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    label: str
    tags: tuple = ()


class Order(pydantic.BaseModel):
    id: int
    items: list[str]
    placed: dt.datetime | None = None


def same(a, b) -> bool:
    """Equality that also compares types (a tuple is not a list) and treats NaN as NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, dt.datetime | dt.time):
        return a == b and a.utcoffset() == b.utcoffset()
    return a == b


hashable = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(max_size=20),
    st.uuids(),
    st.dates(),
    st.decimals(allow_nan=False),
)
timezones = st.one_of(
    st.none(),
    st.just(dt.UTC),
    st.integers(-23 * 60, 23 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m))),
)
scalars = st.one_of(
    hashable,
    st.floats(),  # NaN and infinities included
    st.text(alphabet=st.characters(codec=None)),  # lone surrogates included
    st.datetimes(timezones=timezones),
    st.times(timezones=timezones),
    st.timedeltas(),
    st.decimals(allow_nan=False),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(), inner, max_size=4),
        st.dictionaries(hashable, inner, max_size=4),  # non-str keys
        st.frozensets(hashable, max_size=4),
        st.sets(hashable, max_size=4),
        st.builds(Point, st.integers(), st.text(), st.lists(hashable, max_size=3).map(tuple)),
        st.builds(Order, id=st.integers(), items=st.lists(st.text(), max_size=3)),
    ),
    max_leaves=20,
)


@FAST
@given(values)
def test_supported_values_round_trip(value):
    data = SER.dumps(value)
    assert isinstance(data, str)
    data.encode("utf-8")  # storable as it is in a TEXT column on both backends
    assert same(SER.loads(data), value)


@FAST
@given(st.dictionaries(st.text(), st.integers(), max_size=3))
def test_dicts_that_look_like_tags_round_trip(extra):
    value = {"__durable__": "bytes", "v": "not base64!", **extra}
    assert same(SER.loads(SER.dumps(value)), value)


def test_datetime_kinds():
    aware = dt.datetime(2024, 3, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    naive = dt.datetime(2024, 3, 1, 12, 30, 0, 123456)
    for value in (aware, naive, aware.timetz(), naive.time(), naive.date(), dt.timedelta(-1, 5)):
        back = SER.loads(SER.dumps(value))
        assert same(back, value)
    assert SER.loads(SER.dumps(naive)).tzinfo is None


def _gen():
    yield 1


class Opaque:
    pass


@pytest.mark.parametrize(
    "value",
    [Opaque(), lambda: 1, print, _gen(), object(), Opaque, range(3), 1j, {1: Opaque()}],
    ids=[
        "object",
        "lambda",
        "builtin",
        "generator",
        "bare-object",
        "class",
        "range",
        "complex",
        "nested",
    ],
)
def test_unsupported_values_raise_serialization_error(value):
    with pytest.raises(SerializationError):
        SER.dumps(value)


def test_cycles_raise_serialization_error():
    looped: list = []
    looped.append(looped)
    mapping: dict = {}
    mapping["self"] = mapping
    for value in (looped, mapping):
        with pytest.raises(SerializationError):
            SER.dumps(value)


@FAST
@given(st.lists(st.integers(), max_size=3), st.sampled_from([Opaque(), _gen, {1, Opaque()}]))
def test_the_failing_argument_is_named(good, bad):
    with pytest.raises(SerializationError, match="argument 1 of workflow 'w'"):
        encode_arguments(SER, "w", (good, bad), {})
    with pytest.raises(SerializationError, match="argument 'flag' of workflow 'w'"):
        encode_arguments(SER, "w", (good,), {"flag": bad})


@FAST
@given(st.text())
def test_garbage_in_the_database_is_a_serialization_error(text):
    try:
        SER.loads(text)
    except SerializationError:
        pass  # a clear error, never another exception type


@pytest.mark.parametrize(
    "stored",
    [
        '{"__durable__":"pickle","v":"gASV"}',
        '{"__durable__":"bytes","v":"a"}',
        '{"__durable__":"datetime","v":"yesterday"}',
        '{"__durable__":"tuple","v":5}',
        '{"__durable__":"dict","v":[[1]]}',
    ],
)
def test_malformed_tags_are_serialization_errors(stored):
    with pytest.raises(SerializationError):
        SER.loads(stored)


def test_uuid_and_decimal_exact():
    u = uuid.uuid4()
    d = decimal.Decimal("1234567890.000000000000000001")
    assert SER.loads(SER.dumps([u, d])) == [u, d]
