"""The ONNX target: writes the single time step (and the ANN variant) of a netlist as ONNX
files, and runs the step model on onnxruntime, unrolled over T."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import onnx

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.netlist import Netlist, OutputKind
from snncompile.netlist.target import TargetRun
from snncompile.targets import TARGETS as SPECS

STEP_FILE, ANN_FILE = "model.onnx", "model_ann.onnx"
MAX_BYTES = 2**31 - 1  # protobuf's limit for one file (no external data)


def serialize(model: onnx.ModelProto, what: str) -> bytes:
    """Checked (onnx.checker) and serialized; too large for one file → SnnCompileError."""
    size = model.ByteSize()
    if size > MAX_BYTES:
        raise SnnCompileError(f"the ONNX {what} would take {size / 2**30:.1f} GiB, over protobuf's 2 GiB "
                              "limit for one file", "prune the model (prune_synapses) or export a smaller one",
                              EXIT_UNSUPPORTED)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


class OnnxTarget:
    name = "onnx"
    emissions = SPECS["onnx"].emissions   # float32: onnxruntime's Conv, spikes within a tolerance

    def run(self, net: Netlist, x: np.ndarray, *, timeout_s: float,
            progress: Callable[[int, int], None] | None = None, emit: str | None = None) -> TargetRun:
        from backends.onnx.run import run_steps
        from backends.onnx.step import build_step

        dtype = emit or self.emissions[0]
        t0 = time.perf_counter()
        out = run_steps(build_step(net, dtype), x, progress)
        readout = out.pop("readout")
        return TargetRun(out, readout.reshape(*readout.shape[:2], -1) if net.output_kind is OutputKind.VALUES else None,
                         time.perf_counter() - t0, int(x.shape[0]), "onnxruntime-cpu", dtype)

    def emit(self, net: Netlist) -> dict[str, bytes]:
        from backends.onnx.ann import build_ann
        from backends.onnx.step import build_step

        return {STEP_FILE: serialize(build_step(net), "time-step model"),
                ANN_FILE: serialize(build_ann(net), "ANN variant")}

