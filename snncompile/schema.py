"""Validation at the edges: one small schema per input kind, checked once where it enters.

A schema maps field names to :class:`Field` rules (type, range, required). ``validate``
returns the values converted to their types, or raises one :class:`SnnCompileError` naming
the input, the field, what is wrong and the fix. The kinds: CLI values (:data:`CLI`),
checkpoint metadata (:data:`META`), chip profiles (:data:`CHIP`), firing rates
(:data:`FIRING_RATE`); energy models have theirs in ``energy.costs.parse_cost_model``;
input arrays and masks are checked by :func:`numeric_array`.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from snncompile.errors import EXIT_UNSAFE, EXIT_USAGE, SnnCompileError

MAX_STEPS = 100_000       # time steps: beyond this a run's spike record alone is out of reach


@dataclass(frozen=True)
class Field:
    kind: str                          # "int" | "float" | "bool" | "str" | "shape" | "strings"
    lo: float | None = None            # inclusive lower bound (numbers; shape entries)
    hi: float | None = None            # inclusive upper bound
    lo_open: bool = False              # lower bound exclusive
    required: bool = False
    example: str = ""                  # shown in the hint

    def describe(self) -> str:
        if self.kind == "shape":
            return "a list of positive integers"
        if self.kind in ("int", "float"):
            what = "an integer" if self.kind == "int" else "a finite number"
            if self.lo is not None and self.hi is not None:
                return f"{what} in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]"
            if self.lo is not None:
                return f"{what} {'>' if self.lo_open else '>='} {self.lo:g}"
            return what
        return {"bool": "true or false", "str": "a string", "strings": "a list of strings"}[self.kind]


def _bad(where: str, name: str, value: Any, rule: Field, hint: str) -> SnnCompileError:
    shown = repr(value) if not isinstance(value, float) else f"{value}"
    example = f" (e.g. {rule.example})" if rule.example else ""
    return SnnCompileError(f"{where}: {name} = {shown} is not {rule.describe()}",
                           hint or f"give {name} as {rule.describe()}{example}", EXIT_USAGE)


def check_value(where: str, name: str, value: Any, rule: Field, hint: str = "") -> Any:
    """One value against its rule; returns it converted (int, float, tuple …)."""
    try:
        check = _CHECKS[rule.kind]
    except KeyError:
        raise ValueError(rule.kind) from None
    ok, converted = check(value, rule)
    if not ok:
        raise _bad(where, name, converted, rule, hint)
    return converted


# Each check returns (valid, the value converted); an invalid value comes back as the message
# shows it (a number read from a string, converted) and gets its one message in check_value.
def _number(value: Any, rule: Field) -> tuple[bool, Any]:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        if not isinstance(value, str):
            return False, value
        try:
            value = float(value) if rule.kind == "float" else int(value)
        except ValueError:
            return False, value
    v = float(value)
    if not math.isfinite(v) or (rule.kind == "int" and v != int(v)):
        return False, value
    if rule.lo is not None and (v < rule.lo or (rule.lo_open and v == rule.lo)):
        return False, value
    if rule.hi is not None and v > rule.hi:
        return False, value
    return True, int(v) if rule.kind == "int" else v


def _shape(value: Any, rule: Field) -> tuple[bool, Any]:
    try:
        dims = tuple(value.tolist() if isinstance(value, np.ndarray) else value)
    except TypeError:
        return False, value
    if not dims or any(isinstance(d, (bool, str)) or not float(d).is_integer() or int(d) < 1 for d in dims):
        return False, value
    return True, tuple(int(d) for d in dims)


def _bool(value: Any, rule: Field) -> tuple[bool, Any]:
    return (True, bool(value)) if isinstance(value, (bool, np.bool_)) else (False, value)


def _str(value: Any, rule: Field) -> tuple[bool, Any]:
    return isinstance(value, str), value


def _strings(value: Any, rule: Field) -> tuple[bool, Any]:
    ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    return ok, tuple(value) if ok else value


_CHECKS = {"int": _number, "float": _number, "shape": _shape, "bool": _bool, "str": _str, "strings": _strings}


def validate(where: str, data: dict[str, Any], schema: dict[str, Field], *, hint: str = "",
             closed: bool = False) -> dict[str, Any]:
    """Check the fields of ``schema`` present in ``data`` (``closed``: no other keys allowed)."""
    missing = [k for k, rule in schema.items() if rule.required and data.get(k) is None]
    if missing:
        raise SnnCompileError(f"{where}: missing {', '.join(missing)}",
                              hint or f"add {', '.join(missing)}", EXIT_USAGE)
    if closed:
        unknown = sorted(set(data) - set(schema))
        if unknown:
            raise SnnCompileError(f"{where}: unknown key(s) {', '.join(unknown)}",
                                  f"known keys: {', '.join(schema)}", EXIT_USAGE)
    return {k: (check_value(where, k, v, schema[k], hint) if k in schema and v is not None else v)
            for k, v in data.items()}


# ---- the schemas -----------------------------------------------------------------------------

CLI = {
    "--steps": Field("int", 1, MAX_STEPS, example="--steps 8"),
    "--samples": Field("int", 1, example="--samples 100"),
    "--timeout": Field("float", 0, 7 * 24 * 3600.0, lo_open=True, example="--timeout 900"),
    "--ray-connect-timeout": Field("float", 0, 3600.0, lo_open=True, example="--ray-connect-timeout 30"),
    "--workers": Field("int", 1, 4096, example="--workers 4"),
    "--event-frames": Field("int", 1, MAX_STEPS, example="--event-frames 16"),
    "--event-window": Field("float", 0, lo_open=True, example="--event-window 10000"),
    "--event-count": Field("int", 1, example="--event-count 2000"),
    "--keep-ratio": Field("float", 0, 1, lo_open=True, example="--keep-ratio 0.7"),
}

META = {
    "steps": Field("int", 1, MAX_STEPS, example="steps=8"),
    "input_shape": Field("shape", example="input_shape=(1, 8, 8)"),
    "num_classes": Field("int", 1, example="num_classes=10"),
    "name": Field("str"),
}

CHIP = {
    "name": Field("str", required=True),
    "source": Field("str"),
    "cores_per_chip": Field("int", 1, required=True, example="128"),
    "neurons_per_core": Field("int", 1, required=True, example="1024"),
    "input_axons_per_core": Field("int", 1, required=True, example="4096"),
    "output_axons_per_core": Field("int", 1, required=True, example="4096"),
    "synapse_bits_per_core": Field("int", 1, required=True, example="1048576"),
    "synapse_index_bits": Field("int", 0, 64, required=True, example="10"),
    "max_weight_bits": Field("int", 1, 64, example="8"),
    "weight_sharing": Field("bool"),
    "unverified": Field("strings"),
}

FIRING_RATE = Field("float", 0, 1, example="0.1")


@contextmanager
def reading_arrays(path: Any, what: str, *, fix: str) -> Iterator[None]:
    """Around ``np.load(path, allow_pickle=False)`` and its members' reads: object arrays and
    pickles are refused as unsafe (exit 4), anything unreadable as bad input (exit 2)."""
    try:
        yield
    except SnnCompileError:
        raise
    except ValueError as exc:
        with open(path, "rb") as fh:
            pickled = fh.read(1) == b"\x80"
        if "Object arrays" in str(exc) or pickled:
            raise SnnCompileError(f"{what} {path} holds Python objects (object arrays or a pickle), which "
                                  "would have to be unpickled", f"refused as unsafe; {fix}", EXIT_UNSAFE) from None
        raise SnnCompileError(f"cannot read {what} {path}: {exc}", fix, EXIT_USAGE) from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise SnnCompileError(f"cannot read {what} {path}: {getattr(exc, 'strerror', None) or exc}", fix,
                              EXIT_USAGE) from None


def numeric_array(where: str, array: Any, what: str, *, fix: str) -> np.ndarray:
    """An array read from a user file: never Python objects (that would mean unpickling),
    numbers or booleans only, finite."""
    a = np.asarray(array)
    if a.dtype == object:
        raise SnnCompileError(f"{where}: {what} holds Python objects, which would have to be unpickled",
                              f"refused as unsafe; {fix}", EXIT_UNSAFE)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.issubdtype(a.dtype, np.complexfloating):
        raise SnnCompileError(f"{where}: {what} has dtype {a.dtype}, not real numbers", fix, EXIT_USAGE)
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise SnnCompileError(f"{where}: {what} contains NaN or inf values", f"clean the data; {fix}", EXIT_USAGE)
    return a
