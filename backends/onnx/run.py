"""Run an exported single-step model on onnxruntime, unrolled over T by feeding states back."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import onnx

from snncompile.errors import EXIT_BACKEND, SnnCompileError


def session(model: onnx.ModelProto | bytes | str):
    """An onnxruntime CPU session (one thread: sums in a fixed order)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    try:
        return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise SnnCompileError(f"onnxruntime cannot load the exported model: {exc}",
                              "report this with the model file; the export is a bug", EXIT_BACKEND) from None


def metadata(model: onnx.ModelProto) -> dict:
    props = {p.key: p.value for p in model.metadata_props}
    return json.loads(props["snncompile"])


def run_steps(model: onnx.ModelProto, x: np.ndarray,
              progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Unroll the step model over x [T, N, *input shape]: {population: [T, N, size]} (spikes,
    or values of a product) and ``readout`` [T, N, *output shape]."""
    meta = metadata(model)
    sess = session(model)
    dtype = np.float64 if meta["dtype"] == "float64" else np.float32
    T, N = x.shape[:2]
    state = {p["state"]: np.full((N, p.get("state_size", p["size"])), p["v_init"], dtype=dtype)
             for p in meta["populations"] if "state" in p}
    names = [o.name for o in sess.get_outputs()]
    out: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for t in range(T):
        res = dict(zip(names, sess.run(None, {meta["input"]: np.asarray(x[t], dtype=dtype), **state})))
        for p in meta["populations"]:
            if "state" in p:
                state[p["state"]] = res[p["next_state"]]
        for n in names:
            out[n].append(res[n])
        if progress is not None:
            progress(t + 1, T)
    result = {}
    for p in meta["populations"]:
        result[p["name"]] = np.stack(out[p.get("spikes") or p["values"]])
    result[meta["readout"]] = np.stack(out[meta["readout"]])
    return result
