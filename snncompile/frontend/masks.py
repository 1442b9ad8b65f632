"""External pruning masks: the ``mask_{k}.pkl`` lists of published SNN lottery-ticket code.

The file is a pickled list of numpy arrays, one per parameter whose name contains
'weight', in ``named_parameters()`` order (1-D BatchNorm weights included). It is read with
an unpickler that only rebuilds numpy arrays and lists, never arbitrary objects.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from snncompile.errors import EXIT_UNSAFE, EXIT_USAGE, SnnCompileError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("builtins", "list"), ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"), ("torch", "FloatStorage"), ("torch", "BoolStorage"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise SnnCompileError(f"mask file references {module}.{name}, which is not an array",
                              "a mask file must be a pickled list of numpy arrays", EXIT_UNSAFE)


def read_masks(path: str | Path) -> list[np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise SnnCompileError(f"mask file not found: {path}", "pass the mask_{k}.pkl file", EXIT_USAGE)
    try:
        obj = _ArrayUnpickler(io.BytesIO(path.read_bytes())).load()
    except SnnCompileError as exc:
        raise SnnCompileError(f"{path}: {exc.message}; refused as unsafe", exc.hint, exc.exit_code) from None
    except Exception as exc:
        raise SnnCompileError(f"cannot read mask file {path}: {type(exc).__name__}: {exc}",
                              "a mask file must be a pickled list of numpy arrays", EXIT_USAGE) from None
    if isinstance(obj, dict):
        obj = list(obj.values())
    if not isinstance(obj, list) or not all(isinstance(m, np.ndarray) for m in obj):
        raise SnnCompileError(f"{path} does not hold a list of numpy arrays",
                              "save masks as pickle.dump([mask0, mask1, ...])", EXIT_USAGE)
    return obj


def apply_masks(model: nn.Module, masks: list[np.ndarray], path: str | Path = "masks") -> dict[str, np.ndarray]:
    """Zero masked weights in ``model`` (so PyTorch runs the ticket) and return the synapse
    masks of Conv/Linear modules by module path."""
    params = [(n, p) for n, p in model.named_parameters() if "weight" in n]
    if len(params) != len(masks):
        raise SnnCompileError(f"{path} holds {len(masks)} masks but the model has {len(params)} "
                              "weight parameters", "masks must follow named_parameters() order, "
                              "one per parameter whose name contains 'weight'", EXIT_USAGE)
    modules = dict(model.named_modules())
    out: dict[str, np.ndarray] = {}
    for (name, param), mask in zip(params, masks):
        if tuple(mask.shape) != tuple(param.shape):
            raise SnnCompileError(f"mask for {name} has shape {tuple(mask.shape)}, the weight has "
                                  f"{tuple(param.shape)}", "the masks belong to another architecture",
                                  EXIT_USAGE)
        keep = np.asarray(mask) != 0
        with torch.no_grad():
            param.mul_(torch.as_tensor(keep, dtype=param.dtype))
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        if isinstance(modules.get(owner), (nn.Conv2d, nn.Linear)) and name.endswith("weight"):
            out[owner] = keep
    return out
