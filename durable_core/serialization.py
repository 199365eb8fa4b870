"""Encoding of workflow inputs, step outcomes, messages and events.

JSON is the default: values that JSON lacks (datetime, Decimal, UUID, bytes, tuples, sets,
dataclasses, pydantic models) are written as tagged objects and rebuilt on the way back.
Rebuilding a class never imports a module: only classes whose module is already loaded are
used, so the contents of the database can never make the process run new code.
Pickle is available only when chosen explicitly (it can run code from the database).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import json
import pickle
import sys
import traceback
import types
import uuid
from typing import Any, Protocol

from .errors import SerializationError

TAG = "__durable__"


class Serializer(Protocol):
    name: str

    def dumps(self, value: Any) -> str: ...

    def loads(self, data: str) -> Any: ...


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def find_loaded_class(path: str) -> type | None:
    """Return the class named ``module:qualname`` if its module is already imported.

    Names are looked up in each namespace's ``__dict__`` only: ``getattr`` would run a
    module's PEP 562 ``__getattr__`` (or a class's ``__getattr__``), which may import other
    modules or run code, chosen by whoever wrote the stored tag."""
    if not isinstance(path, str):
        return None
    module_name, _, qualname = path.partition(":")
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        if obj is None or part == "<locals>":
            return None
        try:
            namespace = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            return None
        obj = namespace.get(part) if isinstance(namespace, dict | types.MappingProxyType) else None
    return obj if isinstance(obj, type) else None


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return {TAG: "float", "v": repr(value)}
        return value
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: _encode(v) for k, v in value.items()}
        return {TAG: "dict", "v": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        if hasattr(value, "_fields"):
            raise TypeError(f"named tuple {type(value).__name__} is not supported; use a dataclass")
        return {TAG: "tuple", "v": [_encode(v) for v in value]}
    if isinstance(value, set | frozenset):
        kind = "frozenset" if isinstance(value, frozenset) else "set"
        return {TAG: kind, "v": [_encode(v) for v in value]}
    if isinstance(value, dt.datetime):
        return {TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, dt.date):
        return {TAG: "date", "v": value.isoformat()}
    if isinstance(value, dt.time):
        return {TAG: "time", "v": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, decimal.Decimal):
        return {TAG: "decimal", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return {TAG: "uuid", "v": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {TAG: "dataclass", "cls": _class_path(type(value)), "v": fields}
    if hasattr(value, "model_dump") and hasattr(type(value), "model_validate"):
        return {
            TAG: "pydantic",
            "cls": _class_path(type(value)),
            "v": _encode(value.model_dump(mode="python")),
        }
    raise TypeError(f"Object of type {type(value).__name__} is not serializable")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(TAG)
    if tag is None:
        return {k: _decode(v) for k, v in value.items()}
    v: Any = value.get("v")
    if tag == "tuple":
        return tuple(_decode(x) for x in v)
    if tag == "set":
        return {_decode(x) for x in v}
    if tag == "frozenset":
        return frozenset(_decode(x) for x in v)
    if tag == "dict":
        return {_decode(k): _decode(x) for k, x in v}
    if tag == "float":
        return float(v)
    if tag == "datetime":
        return dt.datetime.fromisoformat(v)
    if tag == "date":
        return dt.date.fromisoformat(v)
    if tag == "time":
        return dt.time.fromisoformat(v)
    if tag == "timedelta":
        return dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2])
    if tag == "decimal":
        return decimal.Decimal(v)
    if tag == "uuid":
        return uuid.UUID(v)
    if tag == "bytes":
        return base64.b64decode(v)
    if tag == "dataclass":
        fields = {k: _decode(x) for k, x in v.items()}
        cls = find_loaded_class(value["cls"])
        if cls is None or not dataclasses.is_dataclass(cls):
            return fields
        init = {
            f.name: fields[f.name] for f in dataclasses.fields(cls) if f.init and f.name in fields
        }
        obj = cls(**init)
        for f in dataclasses.fields(cls):
            if not f.init and f.name in fields:
                object.__setattr__(obj, f.name, fields[f.name])
        return obj
    if tag == "pydantic":
        data = _decode(v)
        cls = find_loaded_class(value["cls"])
        if cls is None or not hasattr(cls, "model_validate"):
            return data
        return cls.model_validate(data)
    raise SerializationError(f"unknown tagged value {tag!r} in stored data")


#: One encoder for every call (``json.dumps`` with options builds one per call); it keeps no
#: state between calls, so threads share it.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


class JSONSerializer:
    """The default serializer: readable, portable, and unable to execute code."""

    name = "json"

    def dumps(self, value: Any) -> str:
        try:
            return _ENCODER.encode(_encode(value))
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(str(exc)) from None

    def loads(self, data: str) -> Any:
        try:
            return _decode(json.loads(data))
        except SerializationError:
            raise
        except Exception as exc:
            raise SerializationError(f"stored value cannot be decoded: {exc}") from None


class PickleSerializer:
    """Pickle, base64 in text columns. Only by explicit choice: loading a pickle runs code, so
    anyone who can write to the system database can run code in your workers."""

    name = "pickle"

    def dumps(self, value: Any) -> str:
        try:
            return base64.b64encode(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)).decode()
        except Exception as exc:
            raise SerializationError(str(exc)) from None

    def loads(self, data: str) -> Any:
        try:
            return pickle.loads(base64.b64decode(data))  # noqa: S301 - opted in explicitly
        except Exception as exc:
            raise SerializationError(f"stored value cannot be unpickled: {exc}") from None


def make_serializer(spec: str | Serializer | None) -> Serializer:
    if spec is None or spec == "json":
        return JSONSerializer()
    if spec == "pickle":
        return PickleSerializer()
    if isinstance(spec, str):
        raise SerializationError(f"unknown serializer {spec!r}; use 'json', 'pickle' or an object")
    if not (hasattr(spec, "dumps") and hasattr(spec, "loads")):
        raise SerializationError("a serializer object needs dumps(value) -> str and loads(str)")
    return spec


def encode_arguments(
    serializer: Serializer, fn_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str:
    """Encode workflow inputs; on failure, name the argument that could not be encoded."""
    try:
        return serializer.dumps({"args": list(args), "kwargs": kwargs})
    except SerializationError as whole:
        for index, arg in enumerate(args):
            try:
                serializer.dumps(arg)
            except SerializationError as exc:
                raise SerializationError(
                    f"argument {index} of workflow {fn_name!r} cannot be serialized: {exc}"
                ) from None
        for key, arg in kwargs.items():
            try:
                serializer.dumps(arg)
            except SerializationError as exc:
                raise SerializationError(
                    f"argument {key!r} of workflow {fn_name!r} cannot be serialized: {exc}"
                ) from None
        raise SerializationError(f"inputs of workflow {fn_name!r}: {whole}") from None


def decode_arguments(
    serializer: Serializer, data: str | None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if not data:
        return (), {}
    value = serializer.loads(data)
    return tuple(value.get("args", ())), dict(value.get("kwargs", {}))


# -- exceptions --------------------------------------------------------------------------------


def _encodable(value: Any) -> Any:
    """``value`` as JSON-ready data, or raise if the JSON serializer cannot encode it."""
    return json.loads(JSONSerializer().dumps(value))


TRACEBACK_LIMIT = 20_000  # characters kept of a stored traceback (its end)


def encode_error(serializer: Serializer, exc: BaseException) -> str:
    """Store an exception as JSON: its type, message, args and plain attributes."""
    payload: dict[str, Any] = {"type": _class_path(type(exc)), "message": str(exc)}
    try:
        payload["args"] = _encodable(list(exc.args))
    except SerializationError:
        pass
    attrs: dict[str, Any] = {}
    for key, value in vars(exc).items():
        if key.startswith("__"):
            continue
        if isinstance(value, BaseException):  # e.g. StepRetriesExceeded.last_error
            attrs[key] = {TAG: "exception", "v": json.loads(encode_error(serializer, value))}
            continue
        try:
            attrs[key] = _encodable(value)
        except SerializationError:
            pass
    if attrs:
        payload["attrs"] = attrs
    if exc.__traceback__ is not None or exc.__cause__ is not None or exc.__context__ is not None:
        # For people (the admin, `durable workflows show`): where it failed, causes included.
        payload["traceback"] = "".join(traceback.format_exception(exc))[-TRACEBACK_LIMIT:]
    if _is_pickle(serializer):
        try:
            payload["pickle"] = serializer.dumps(exc)
        except Exception:
            pass
    return json.dumps(payload, separators=(",", ":"))


def _is_pickle(serializer: Serializer) -> bool:
    # A custom serializer need only have dumps and loads (API.md): ``name`` is optional.
    return getattr(serializer, "name", None) == "pickle"


def fallback_error(failure: BaseException, original: BaseException | None) -> str:
    """An error record built without the serializer or the exceptions' own ``__str__``, for
    when encoding the real outcome failed: it says what happened instead of losing it."""

    def describe(exc: BaseException) -> str:
        try:
            return f"{type(exc).__name__}: {exc}"
        except Exception:
            return type(exc).__name__

    message = f"the outcome could not be recorded ({describe(failure)})"
    if original is not None:
        message += f"; the workflow raised {describe(original)}"
    payload = {"type": "builtins:RuntimeError", "message": message}
    return json.dumps(payload, separators=(",", ":"))


def error_summary(data: str | None) -> str | None:
    """The human form of a stored error: ``ExceptionType: message``."""
    if not data:
        return None
    try:
        payload = json.loads(data)
    except ValueError:
        return data
    name = payload.get("type", "Exception").rpartition(":")[2]
    return f"{name}: {payload.get('message', '')}"


def decode_error(serializer: Serializer, data: str, workflow_id: str = "?") -> BaseException:
    """Rebuild a stored exception: the original type when it is loaded and constructible."""
    from .errors import WorkflowFailed

    try:
        payload = json.loads(data)
    except ValueError:
        return WorkflowFailed(workflow_id, "Exception", data)
    if "pickle" in payload and _is_pickle(serializer):
        try:
            loaded = serializer.loads(payload["pickle"])
        except Exception:
            loaded = None
        if isinstance(loaded, BaseException):
            return loaded
    path = payload.get("type", "builtins:Exception")
    cls = find_loaded_class(path)
    # Only ordinary exceptions are rebuilt: reading a result must never raise SystemExit,
    # KeyboardInterrupt or CancelledError in the reader.
    if cls is not None and issubclass(cls, Exception):
        try:
            # Rebuilt without calling __init__, whose signature may differ from its args.
            exc = cls.__new__(cls)
            exc.args = tuple(_decode(payload.get("args", [payload.get("message", "")])))
            for key, value in payload.get("attrs", {}).items():
                if isinstance(value, dict) and value.get(TAG) == "exception":
                    value = decode_error(serializer, json.dumps(value["v"]), workflow_id)
                else:
                    value = _decode(value)
                setattr(exc, key, value)
            return exc
        except Exception:
            pass
    return WorkflowFailed(workflow_id, path.rpartition(":")[2], payload.get("message", ""))
