"""netx HDF5 files written with h5py in lava-dl 0.6.0's layout, and a run of lava-dl's own
loader (``lava.lib.dl.netx.hdf5.Network``, fixed_pt) in a child process under a timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _neuron(g: h5py.Group, vth: int, i_decay: int = 4096, v_decay: int = 0) -> None:
    n = g.create_group("neuron")
    n.create_dataset("type", data=np.bytes_("CUBA"))
    for k, v in (("vThMant", vth), ("iDecay", i_decay), ("vDecay", v_decay), ("refDelay", 1)):
        n.create_dataset(k, data=v)


def write_netx(path: Path, layers: list[dict]) -> Path:
    """``layers``: dicts with ``type`` and the datasets of that layer; ``neuron`` = (vth, iDecay, vDecay)."""
    with h5py.File(path, "w") as fh:
        root = fh.create_group("layer")
        for i, spec in enumerate(layers):
            g = root.create_group(str(i))
            g.create_dataset("type", data=np.bytes_(spec["type"]))
            for k, v in spec.items():
                if k == "neuron":
                    _neuron(g, *v)
                elif k != "type":
                    g.create_dataset(k, data=v)
    return path


def conv_dense_file(path: Path, seed: int = 0) -> Path:
    """input (1×10×10) → conv 8@3×3 stride 1 pad 1, bias → flatten → dense 12 with leak and
    current memory → dense 4: integer weights in 7 bits + sign."""
    rng = np.random.default_rng(seed)

    def sparse_w(shape, p=0.5, lo=-40, hi=90):
        return (rng.integers(lo, hi, shape) * (rng.random(shape) < p)).astype(np.int32)

    return write_netx(path, [
        {"type": "input", "shape": np.array([1, 10, 10])},
        {"type": "conv", "shape": np.array([8, 10, 10]), "weight": sparse_w((8, 1, 3, 3)), "stride": np.array([1, 1]),
         "padding": np.array([1, 1]), "dilation": np.array([1, 1]), "groups": 1,
         "bias": rng.integers(-20, 30, 8), "neuron": (100, 4096, 600)},
        {"type": "flatten", "shape": np.array([800])},
        {"type": "dense", "shape": np.array([12]), "weight": sparse_w((12, 800), 0.2, -30, 60),
         "neuron": (150, 3000, 300)},
        {"type": "dense", "shape": np.array([4]), "weight": sparse_w((4, 12), 0.8, -60, 120),
         "neuron": (300, 4096, 0)},
    ])


_RUN = r"""
import sys, json, numpy as np
from backends.lava import compat
hdf5 = compat.import_netx()
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.source import RingBuffer
from lava.proc.io.sink import RingBuffer as Sink
spec = json.loads(sys.argv[1])
x = np.load(spec["x"])                       # (T, *shape) in (C, H, W) order
T, lat = x.shape[0], spec["latency"]
net = hdf5.Network(net_config=spec["net"], input_message_bits=spec["bits"], num_layers=spec["layers"],
                    reset_interval=T + lat, reset_offset=1)   # zero each layer as its first input arrives
data = np.zeros((*net.inp.shape, T + lat))
data[..., :T] = np.moveaxis(x.reshape(T, *x.shape[1:]).transpose(0, *range(x.ndim - 1, 0, -1)), 0, -1)
src = RingBuffer(data=data)
sink = Sink(shape=net.out.shape, buffer=T + lat)
src.s_out.connect(net.inp)
net.out.connect(sink.a_in)
net.run(condition=RunSteps(num_steps=T + lat), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
out = sink.data.get()
net.stop()
np.save(spec["out"], out)
"""


def run_netx(net: Path, x: np.ndarray, latency: int, bits: int = 0, timeout: float = 180,
             layers: int | None = None) -> np.ndarray:
    """lava-dl's own netx run of one sample x [T, *shape]: output spikes [T + latency, n_out]."""
    tmp = net.parent
    np.save(tmp / "netx_x.npy", x)
    spec = {"net": str(net), "x": str(tmp / "netx_x.npy"), "out": str(tmp / "netx_out.npy"),
            "latency": latency, "bits": bits, "layers": layers}
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), TMPDIR=str(tmp))
    proc = subprocess.run([sys.executable, "-c", _RUN, json.dumps(spec)], env=env, capture_output=True, text=True,
                          timeout=timeout, start_new_session=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    out = np.load(tmp / "netx_out.npy")
    return out.reshape(-1, out.shape[-1]).T
