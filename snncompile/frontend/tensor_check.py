"""Checkpoint tensors checked before anything computes with them: tensors on the meta device
(shapes without values) are refused by name; quantized weights (qint8/quint8/qint32, per
tensor or per channel) are dequantized as PyTorch's own ``dequantize()`` defines them
(``(q - zero_point) * scale``, the values a float layer would compute with); and the sizes the
tensors declare are checked against the memory budget *before* any of them is materialized —
a tensor with zero strides can declare billions of elements over a storage of a few bytes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.limits import human, memory_budget

_FLOAT64 = 8   # the IR holds every weight in float64: what a declared tensor will cost


def _named_tensors(model: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    """Parameters, buffers and plain tensor attributes, by their module path."""
    for prefix, m in model.named_modules():
        for name, t in [*m._parameters.items(), *m._buffers.items(), *vars(m).items()]:
            if isinstance(t, torch.Tensor):
                yield (f"{prefix}.{name}" if prefix else name), t


def _refuse_meta(name: str, path: Path) -> SnnCompileError:
    return SnnCompileError(f"{path}: tensor {name} is on the meta device (a shape without values)",
                           "save the model after loading its weights (model.to('cpu') before torch.save); a "
                           "meta tensor holds no weights to compile", EXIT_USAGE)


def _stored_bytes(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().nbytes()
    except (RuntimeError, NotImplementedError):   # sparse and other layouts without one storage
        return t.numel() * t.element_size()


def check_declared(tensors: Iterable[tuple[str, torch.Tensor]], path: Path) -> None:
    """Refuse meta tensors and a total declared size beyond the memory budget, naming the
    largest tensor (and its storage when strides make it look larger than it is)."""
    total, largest = 0, ("", None)
    for name, t in tensors:
        if t.is_meta:
            raise _refuse_meta(name, path)
        total += t.numel() * _FLOAT64
        if largest[1] is None or t.numel() > largest[1].numel():
            largest = (name, t)
    budget = memory_budget()
    if total <= budget:
        return
    name, t = largest
    stored = _stored_bytes(t)
    how = (f" over a storage of {human(stored)} (zero or overlapping strides {tuple(t.stride())})"
           if stored < t.numel() * t.element_size() else "")
    raise SnnCompileError(f"{path}: tensor {name} declares {t.numel():,} elements{how}; the model's tensors "
                          f"need {human(total)} of memory, {human(budget)} is available",
                          "check the checkpoint (an expanded or corrupted tensor?); the budget is the "
                          "available memory, or SNNCOMPILE_MEMORY_BUDGET bytes", EXIT_USAGE)


def prepare_state(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The state_dict with quantized tensors dequantized, after :func:`check_declared`."""
    check_declared(((k, v) for k, v in state.items() if isinstance(v, torch.Tensor)), path)
    return {k: v.dequantize() if isinstance(v, torch.Tensor) and v.is_quantized else v for k, v in state.items()}


def check_model(model: nn.Module, path: Path) -> None:
    """A loaded module's tensors: no meta, none quantized (a quantized module is not a float
    layer this frontend reads), declared sizes within the budget."""
    named = list(_named_tensors(model))
    for name, t in named:
        if t.is_quantized:
            raise SnnCompileError(f"{path}: tensor {name} is quantized ({t.dtype}) inside a module",
                                  "save the float model's state_dict (quantized weights in it are "
                                  "dequantized) and pass --arch package.module:factory", EXIT_USAGE)
    check_declared(named, path)
