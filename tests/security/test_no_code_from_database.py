"""JSON is the default and nothing read from the database makes the process import or run code:
tagged values name classes, but only classes whose module is already loaded are rebuilt, and
pickle is used only when the engine was explicitly configured with it."""

from __future__ import annotations

import base64
import json
import pickle
import sys

import pytest

from durable_core import Engine
from durable_core.errors import SerializationError
from durable_core.serialization import JSONSerializer, decode_error, make_serializer

UNLOADED = "email.mime.audio"  # in the standard library, imported by nothing here


class Boom:
    """Unpickling this would run ``sys.exit`` (a stand-in for ``os.system``)."""

    def __reduce__(self):
        return (sys.exit, ("pickle ran code from the database",))


PICKLED = base64.b64encode(pickle.dumps(Boom())).decode()


def test_json_is_the_default(tmp_path):
    assert Engine(f"sqlite:///{tmp_path / 'x.sqlite3'}").serializer.name == "json"
    assert make_serializer(None).name == "json"


@pytest.mark.parametrize("tag", ["dataclass", "pydantic"])
def test_a_class_in_an_unloaded_module_is_not_imported(tag):
    assert UNLOADED not in sys.modules
    stored = json.dumps({"__durable__": tag, "cls": f"{UNLOADED}:MIMEAudio", "v": {"a": 1}})
    assert JSONSerializer().loads(stored) == {"a": 1}  # the plain data, no object
    assert UNLOADED not in sys.modules


def test_an_exception_type_in_an_unloaded_module_is_not_imported():
    stored = json.dumps({"type": f"{UNLOADED}:Boom", "message": "m", "args": ["m"]})
    error = decode_error(JSONSerializer(), stored, "wf")
    assert type(error).__name__ == "WorkflowFailed" and "Boom" in str(error)
    assert UNLOADED not in sys.modules


def test_pickle_payloads_are_not_executed_by_the_json_serializer():
    for stored in (
        json.dumps({"__durable__": "pickle", "v": PICKLED}),
        json.dumps({"__durable__": "object", "cls": "builtins:eval", "v": "1+1"}),
    ):
        with pytest.raises(SerializationError, match="unknown tagged value"):
            JSONSerializer().loads(stored)
    with pytest.raises(SerializationError):
        JSONSerializer().loads(PICKLED)
    # A stored error carrying a pickle is rebuilt from its JSON part only.
    error = json.dumps({"type": "builtins:ValueError", "message": "x", "pickle": PICKLED})
    assert isinstance(decode_error(JSONSerializer(), error), ValueError)


def test_non_classes_are_never_called():
    """A tag naming a loaded function (not a class) yields the plain data."""
    stored = json.dumps({"__durable__": "dataclass", "cls": "os:system", "v": {"command": "x"}})
    assert JSONSerializer().loads(stored) == {"command": "x"}


def test_pickle_runs_code_so_it_is_opt_in_only():
    """The documented risk, demonstrated: the pickle serializer executes what it loads."""
    with pytest.raises(SystemExit, match="pickle ran code"):
        make_serializer("pickle").loads(PICKLED)


@pytest.fixture
def lazy_module():
    """A loaded module with a PEP 562 ``__getattr__`` that imports on demand (as
    ``concurrent.futures`` and ``pydantic`` do): stored tags must never trigger it."""
    import types

    calls: list[str] = []
    module = types.ModuleType("durable_test_lazy_module")

    def __getattr__(name: str):
        calls.append(name)
        import email.mime.audio  # noqa: F401 - the side effect under test

        raise AttributeError(name)

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]

    class Meta(type):
        def __getattr__(cls, name: str):
            calls.append(f"{cls.__name__}.{name}")
            raise AttributeError(name)

    class Outer(metaclass=Meta):
        pass

    module.Outer = Outer  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module.__name__, calls
    del sys.modules[module.__name__]


@pytest.mark.parametrize("qualname", ["Lazy", "Outer.Lazy", "Outer.__class__"])
@pytest.mark.parametrize("tag", ["dataclass", "pydantic"])
def test_a_module_getattr_is_never_run_by_a_stored_tag(lazy_module, tag, qualname):
    name, calls = lazy_module
    assert UNLOADED not in sys.modules
    stored = json.dumps({"__durable__": tag, "cls": f"{name}:{qualname}", "v": {"a": 1}})
    assert JSONSerializer().loads(stored) == {"a": 1}
    error = decode_error(
        JSONSerializer(), json.dumps({"type": f"{name}:{qualname}", "message": "m"}), "wf"
    )
    assert type(error).__name__ == "WorkflowFailed"
    assert calls == []
    assert UNLOADED not in sys.modules
