"""Host selection and masking ops (issue 24): ``sort``/``argsort`` of scores, indexing tokens by
per-sample indices (``x[arange(B)[:, None], idx]``), boolean token masks (comparisons,
``masked_fill``, ``torch.where``) and ``max``/``amax`` of real values. Each becomes a host
partition (:mod:`snncompile.ir.host`); ``--no-host`` refuses it by name."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch
from torch import fx

from snncompile.frontend.fold import Folder, constant_nodes
from snncompile.frontend.ops.common import unsupported
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.host import add_host
from snncompile.frontend.ops.registry import op, op_name
from snncompile.ir.host import Compare, IndexSelect, Max, Sort, Where

_OPS = {"gt": "gt", "__gt__": "gt", "ge": "ge", "__ge__": "ge", "lt": "lt", "__lt__": "lt", "le": "le",
        "__le__": "le", "eq": "eq", "__eq__": "eq", "ne": "ne", "__ne__": "ne"}
_FLIP = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge", "eq": "eq", "ne": "ne"}   # c < x  ⇔  x > c
_PY = {operator.gt: "gt", operator.ge: "ge", operator.lt: "lt", operator.le: "le", operator.eq: "eq",
       operator.ne: "ne"}


def _arg(n: fx.Node, pos: int, key: str, default: Any) -> Any:
    return n.kwargs.get(key, n.args[pos] if len(n.args) > pos else default)


@op("sort", early=True)
def sort(cx: Converter, n: fx.Node) -> None:
    """``values, indices = x.sort(dim, descending, stable=...)``: ``getitem`` makes each a Sort node."""
    if not cx.tensor_args(n):
        return cx.refuse(n)
    where = n.format_node()
    axis = cx.sample_axis(n.args[0], _arg(n, 1, "dim", -1), where)
    fn = Sort(axis=axis, descending=bool(_arg(n, 2, "descending", False)), stable=bool(n.kwargs.get("stable", False)))
    cx.host_pieces[n.name] = (cx.ir_input(n.args[0], where), fn)
    return None


@op("argsort")
def argsort(cx: Converter, n: fx.Node) -> str:
    """``x.argsort(dim, descending, stable=...)``: the sorting permutation (SparseSpikformer's token ranks)."""
    where = n.format_node()
    axis = cx.sample_axis(n.args[0], _arg(n, 1, "dim", -1), where)
    fn = Sort(axis=axis, descending=bool(_arg(n, 2, "descending", False)), stable=bool(n.kwargs.get("stable", False)))
    return add_host(cx, fn, [cx.ir_input(n.args[0], where)], cx.sample_shape(n), cx.module_of(n))


@op("max", "amax", early=True)
def maximum(cx: Converter, n: fx.Node) -> str | None:
    """``x.amax(dim)`` (values) or ``x.max(dim)`` ((values, indices), taken by ``getitem``), of real
    values along one per-sample axis; a max over everything or of two tensors is refused."""
    where = n.format_node()
    dim = _arg(n, 1, "dim", None)
    if isinstance(dim, (tuple, list)) and len(dim) == 1:
        dim = dim[0]
    if not cx.tensor_args(n) or not isinstance(dim, int):
        raise unsupported(f"`{op_name(n)}` other than over one axis of a tensor (`x.max(dim)`, `x.amax(dim)`)", where)
    fn = Max(axis=cx.sample_axis(n.args[0], dim, where))
    src = cx.ir_input(n.args[0], where)
    if op_name(n) == "max":
        cx.host_pieces[n.name] = (src, fn)
        return None
    return add_host(cx, fn, [src], cx.sample_shape(n), cx.module_of(n))


def compare(cx: Converter, n: fx.Node) -> str | None:
    """``x > c`` (and ≥ < ≤ == ≠, either side) of a real value and a constant: a 0/1 host mask."""
    name = _PY.get(n.target) if n.target in _PY else _OPS.get(op_name(n))
    a, b = n.args[0], n.args[1] if len(n.args) > 1 else n.kwargs.get("other")
    if isinstance(a, (int, float)) and isinstance(b, fx.Node):
        a, b, name = b, a, _FLIP[name]
    if not (isinstance(a, fx.Node) and a.name in cx.env and isinstance(b, (int, float)) and not isinstance(b, bool)):
        return cx.refuse(n)
    return add_host(cx, Compare(op=name, c=float(b)), [cx.env[a.name]], cx.sample_shape(n), cx.module_of(n))


for _name in _OPS:
    op(_name)(compare)


@op("bool")
def to_bool(cx: Converter, n: fx.Node) -> str:
    """``x.bool()``: x ≠ 0 (a 0/1 keep mask stays itself)."""
    where = n.format_node()
    src = cx.ir_input(n.args[0], where)
    return add_host(cx, Compare(op="ne", c=0.0), [src], cx.sample_shape(n), cx.module_of(n))


@op("logical_not", "__invert__", "bitwise_not")
def logical_not(cx: Converter, n: fx.Node) -> str:
    """``~mask``: mask = 0."""
    where = n.format_node()
    src = cx.ir_input(n.args[0], where)
    return add_host(cx, Compare(op="eq", c=0.0), [src], cx.sample_shape(n), cx.module_of(n))


def _side(cx: Converter, v: Any, where: str) -> tuple[float | None, list[str]]:
    """A where/masked_fill operand: a constant, or an IR value read as an input."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v), []
    return None, [cx.ir_input(v, where)]


@op("masked_fill", "masked_fill_")
def masked_fill(cx: Converter, n: fx.Node) -> str:
    """``x.masked_fill(mask, v)`` = where(mask, v, x): tokens dropped by a boolean mask."""
    where = n.format_node()
    mask, value = _arg(n, 1, "mask", None), _arg(n, 2, "value", None)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise unsupported("masked_fill with a tensor value (use a constant)", where)
    x = cx.ir_input(n.args[0], where)
    return add_host(cx, Where(a=float(value)), [cx.ir_input(mask, where), x], cx.sample_shape(n), cx.module_of(n))


@op("where", early=True)
def where_(cx: Converter, n: fx.Node) -> str | None:
    """``torch.where(mask, a, b)`` of real values or constants; ``where(mask)`` alone is refused."""
    if len(n.args) != 3:
        return cx.refuse(n)
    where = n.format_node()
    a, ins_a = _side(cx, n.args[1], where)
    b, ins_b = _side(cx, n.args[2], where)
    return add_host(cx, Where(a=a, b=b), [cx.ir_input(n.args[0], where), *ins_a, *ins_b], cx.sample_shape(n),
                    cx.module_of(n))


def rows_index(cx: Converter, n: fx.Node) -> str | None:
    """``x[arange(R)[:, None], idx]`` with x [R, N, ...] (R = steps × samples) and idx [R, k]: each
    row's own tokens, an IndexSelect on the host; None if ``n`` is another indexing."""
    src, index = n.args[0], n.args[1]
    if not (isinstance(index, tuple) and len(index) == 2 and all(isinstance(i, fx.Node) for i in index)):
        return None
    rows, idx = index
    full = cx.rec.shapes.get(src.name, ())
    value = cx.folder.array(rows) if cx.folder.is_constant(rows) else None
    if value is None or idx.name not in cx.env or src.name not in cx.env \
            or len(full) - len(cx.g.node(cx.env[src.name]).shape) != 1:
        return None
    if value.shape != (full[0], 1) or not np.array_equal(value[:, 0], np.arange(full[0])):
        return None
    if len(cx.g.node(cx.env[idx.name]).shape) != 1:
        raise unsupported("indexing tokens by a per-row index of more than one axis", n.format_node())
    return add_host(cx, IndexSelect(axis=0), [cx.env[src.name], cx.env[idx.name]], cx.sample_shape(n),
                    cx.module_of(n))


_FLAT = {"reshape", "view", "flatten"}


def _shape(n: Any) -> tuple[int, ...] | None:
    v = n.meta.get("value") if isinstance(n, fx.Node) else None
    return tuple(v.shape) if isinstance(v, torch.Tensor) else None


def _offset_rows(folder: Folder, idx_sum: fx.Node, rows: int, tokens: int) -> fx.Node | None:
    """``idx + arange(R)[:, None]·N`` (either order): idx, else None."""
    if idx_sum.op not in ("call_function", "call_method") or op_name(idx_sum) not in ("add", "__add__", "__radd__"):
        return None
    for idx, off in (idx_sum.args[:2], idx_sum.args[1::-1]):
        if isinstance(idx, fx.Node) and folder.is_constant(off) and not folder.is_constant(idx):
            value = folder.array(off)
            want = np.arange(rows)[:, None] * tokens
            if value is not None and value.shape == want.shape and np.array_equal(value, want):
                return idx
    return None


def rewrite_batch_index_select(gm: fx.GraphModule) -> int:
    """DynamicViT's / SparseSpikformer's ``batch_index_select``,
    ``x.reshape(R·N, C)[(idx + arange(R)[:, None]·N).reshape(-1)].reshape(R, k, C)`` (or of x [R, N]), flattens the
    rows into one axis only to index each row's own tokens: rewritten to ``x[arange(R)[:, None], idx]``
    (the same values), which :func:`rows_index` compiles. Returns how many were rewritten."""
    folder = Folder(gm, constant_nodes(gm.graph))
    done = 0
    for n in list(gm.graph.nodes):
        if n.op != "call_function" or n.target is not operator.getitem or len(n.users) != 1:
            continue
        flat, where = n.args
        out = next(iter(n.users))
        if not (isinstance(flat, fx.Node) and isinstance(where, fx.Node) and op_name(flat) in _FLAT
                and op_name(where) in _FLAT and op_name(out) in _FLAT and isinstance(where.args[0], fx.Node)):
            continue
        x, full, idx_shape = flat.args[0], _shape(flat.args[0]), _shape(where.args[0])
        if full is None or idx_shape is None or len(full) < 2 or len(idx_shape) != 2 or _shape(out) != (
                full[0], idx_shape[1], *full[2:]):
            continue
        idx = _offset_rows(folder, where.args[0], full[0], full[1])
        if idx is None:
            continue
        name = f"_rows_{done}"
        gm.register_buffer(name, torch.arange(full[0])[:, None])
        with gm.graph.inserting_before(out):
            rows = gm.graph.get_attr(name)
            rows.meta["value"] = getattr(gm, name)
            pick = gm.graph.call_function(operator.getitem, (x, (rows, idx)))
        pick.meta.update({k: out.meta[k] for k in ("value", "nn_module_stack") if k in out.meta})
        out.replace_all_uses_with(pick)
        done += 1
    if done:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return done
