"""Bad input corpus, second round (issue #27): hostile NIR graphs, special files, declared sizes
beyond the memory budget. Each case ends with one error naming the problem and a hint, its
documented exit code, no traceback, within seconds, and nothing written or changed."""

from __future__ import annotations

import json
import os
import signal
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest
import torch

from snncompile.cli import main
from tests.netx_files import write_netx
from tests.test_bad_inputs import Case, _snapshot  # the first corpus's case, setup and snapshot

ROOT = Path(__file__).resolve().parents[1]
M, X = str(ROOT / "models" / "digits_scnn.pt"), str(ROOT / "models" / "digits_test.npz")
DT = 1e-4
BUDGET = 64 << 20   # SNNCOMPILE_MEMORY_BUDGET for every case: 64 MB


def _lif(n: int, **over) -> nir.LIF:
    p = {"tau": np.full(n, 2 * DT), "r": np.full(n, 2.0), "v_leak": np.zeros(n),
         "v_threshold": np.ones(n), "v_reset": np.zeros(n)}
    p.update(over)
    return nir.LIF(**p)


def _graph(mid: dict, n_in: int = 4, n_out: int = 3, meta: dict | None = None,
           chain: list[str] | None = None) -> nir.NIRGraph:
    """Input → the nodes of ``mid`` in order (or ``chain``) → Output."""
    nodes = {"in": nir.Input(np.array([n_in])), **mid, "out": nir.Output(np.array([n_out]))}
    order = ["in", *(chain or mid), "out"]
    g = nir.NIRGraph(nodes=nodes, edges=list(zip(order, order[1:])), type_check=False)
    g.metadata = {"snncompile.dt": DT} if meta is None else meta
    return g


def _affine(w=None, b=None) -> nir.Affine:
    w = np.full((3, 4), 0.5) if w is None else w
    return nir.Affine(weight=w, bias=np.zeros(3) if b is None else b)


def nir_file(make: Callable[[], nir.NIRGraph], name: str = "g.nir") -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        nir.write(d / name, make())
    return setup


def huge_weight(d: Path) -> None:
    """A NIR file whose weight dataset declares 8 GB (h5py stores none of it: never written)."""
    nir.write(d / "g.nir", _graph({"fc": _affine(), "lif": _lif(3)}))
    with h5py.File(d / "g.nir", "r+") as fh:
        grp = fh["node/nodes/fc"]
        del grp["weight"]
        grp.create_dataset("weight", shape=(3, 1 << 28), dtype="f8", chunks=(1, 1 << 16))


def conv(**over) -> Callable[[], nir.NIRGraph]:
    def make() -> nir.NIRGraph:
        p = {"input_shape": np.array([8, 8]), "weight": np.ones((2, 1, 3, 3)), "stride": np.array([1, 1]),
             "padding": np.array([1, 1]), "dilation": np.array([1, 1]), "groups": 1, "bias": np.zeros(2)}
        c = nir.Conv2d(**p)
        for k, v in over.items():   # after construction: nir's own checks would refuse them first
            setattr(c, k, v)
        nodes = {"in": nir.Input(np.array([1, 8, 8])), "c": c, "lif": _lif(128),
                 "out": nir.Output(np.array([2, 8, 8]))}
        g = nir.NIRGraph(nodes=nodes, edges=[("in", "c"), ("c", "lif"), ("lif", "out")], type_check=False)
        g.metadata = {"snncompile.dt": DT}
        return g
    return make


def deep_chain() -> nir.NIRGraph:
    """Affine → 1,500 Scale nodes → LIF: a graph deeper than Python's recursion limit."""
    scales = {f"s{i}": nir.Scale(np.ones(3)) for i in range(1500)}
    return _graph({"fc": _affine(), **scales, "lif": _lif(3)})


def long_loop() -> nir.NIRGraph:
    """A recurrent loop through 1,050 elementwise nodes back into the neuron."""
    n = 1050
    mid = {"fc": _affine(), "lif": _lif(3), **{f"s{i}": nir.Scale(np.full(3, 1.0)) for i in range(n)},
           "rec": nir.Linear(weight=np.eye(3) * 0.1)}
    nodes = {"in": nir.Input(np.array([4])), **mid, "out": nir.Output(np.array([3]))}
    edges = [("in", "fc"), ("fc", "lif"), ("lif", "out"), ("lif", "s0")]
    edges += [(f"s{i}", f"s{i + 1}") for i in range(n - 1)] + [(f"s{n - 1}", "rec"), ("rec", "lif")]
    g = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    g.metadata = {"snncompile.dt": DT}
    return g


def fifo(name: str) -> Callable[[Path], None]:
    return lambda d: os.mkfifo(d / name)


def npy_header(name: str, shape: tuple[int, ...]) -> Callable[[Path], None]:
    """A .npy of a few bytes whose header declares ``shape`` float64."""
    def setup(d: Path) -> None:
        with open(d / name, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return setup


def npz_header(d: Path) -> None:
    with zipfile.ZipFile(d / "x.npz", "w") as zf, zf.open("x.npy", "w") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10 ** 13, 1, 8, 8)})


def zip_bomb(d: Path) -> None:
    """An .npz of ~100 KB that inflates to 96 MB of zeros (above the 64 MB budget)."""
    header = io_header((3 << 22, 1, 8, 1))
    with zipfile.ZipFile(d / "x.npz", "w", compression=zipfile.ZIP_DEFLATED) as zf, \
            zf.open("x.npy", "w", force_zip64=True) as fh:
        fh.write(header)
        block = bytes(1 << 24)
        for _ in range(6):
            fh.write(block)


def io_header(shape: tuple[int, ...]) -> bytes:
    import io
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def sweep_grid(passes: int, extra: str = "") -> Callable[[Path], None]:
    """A spec whose pass list alone makes ``passes`` cells (one model, one precision)."""
    def setup(d: Path) -> None:
        (d / "a.pt").write_bytes(b"")
        names = ", ".join(f'"p{i}"' for i in range(passes))
        (d / "s.toml").write_text(f'models = ["a.pt"]\ninput = "x.npz"\nsimulate = false\npasses = [{names}]\n{extra}')
    return setup


def _net(n_in: int = 64) -> torch.nn.Module:
    from spikingjelly.activation_based import layer, neuron

    with torch.device("meta"):   # shapes only: the cases give the weights themselves
        return torch.nn.Sequential(layer.Linear(n_in, 10), neuron.IFNode())


WIDE_ARCH = """
from torch import nn
from spikingjelly.activation_based import layer, neuron

def wide():
    return nn.Sequential(layer.Linear(400_000_000, 10), neuron.IFNode())
"""


def zero_stride(as_module: bool) -> Callable[[Path], None]:
    """A [10, 4e8] weight (4e9 elements, 16 GB as float32) over a storage of one float."""
    def setup(d: Path) -> None:
        import torch

        w = torch.zeros(1).as_strided((10, 400_000_000), (0, 0))
        if as_module:
            net = _net(400_000_000)
            net[0].weight = torch.nn.Parameter(w, requires_grad=False)
            net[0].bias = torch.nn.Parameter(torch.zeros(10), requires_grad=False)
            torch.save({"model": net, "steps": 2}, d / "m.pt")
        else:
            (d / "widemod.py").write_text(WIDE_ARCH)
            torch.save({"state_dict": {"0.weight": w, "0.bias": torch.zeros(10)}, "steps": 2}, d / "m.pt")
    return setup


def meta_tensors(as_module: bool) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        import torch

        net = _net()
        torch.save({"model": net, "steps": 2} if as_module else {"state_dict": net.state_dict(), "steps": 2},
                   d / "m.pt")
        (d / "widemod.py").write_text(WIDE_ARCH + "\ndef small():\n    return nn.Sequential(layer.Linear(64, 10), "
                                      "neuron.IFNode())\n")
    return setup


def quantized_buffer(d: Path) -> None:

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    net.register_buffer("scale_q", torch.quantize_per_tensor(torch.ones(4), 0.5, 0, torch.qint8))
    torch.save(net, d / "m.pt")


def netx_file(layer: int = 1, edit: Callable[[h5py.Group], None] | None = None, flat: int = 72,
              **over) -> Callable[[Path], None]:
    """A small netx file (input 1×6×6 → conv 2@3×3 → flatten → dense 3 of ``flat`` inputs) with
    ``over`` in layer ``layer`` (None removes a key), then ``edit`` of that layer's HDF5 group."""
    def setup(d: Path) -> None:
        layers = [{"type": "input", "shape": np.array([1, 6, 6])},
                  {"type": "conv", "shape": np.array([2, 6, 6]), "weight": np.ones((2, 1, 3, 3), np.int32),
                   "padding": np.array([1, 1]), "neuron": (10, 4096, 0)},
                  {"type": "flatten", "shape": np.array([flat])},
                  {"type": "dense", "shape": np.array([3]), "weight": np.ones((3, flat), np.int32),
                   "neuron": (10, 4096, 0)}]
        for k, v in over.items():
            layers[layer].pop(k) if v is None else layers[layer].update({k: v})
        write_netx(d / "m.net", layers)
        if edit:
            with h5py.File(d / "m.net", "r+") as fh:
                edit(fh[f"layer/{layer}"])
    return setup


def _replace(key: str, make: Callable[[h5py.Group], None]) -> Callable[[h5py.Group], None]:
    def edit(g: h5py.Group) -> None:
        del g[key]
        make(g)
    return edit


def layer_is_dataset(d: Path) -> None:
    with h5py.File(d / "m.net", "w") as fh:
        fh.create_dataset("layer", data=3)


G = ["g.nir", "--steps", "2"]
NX = ["m.net", "--steps", "2", "--target", "energy"]
SHAPE = ["--input-shape", "1,8,8", "--target", "energy"]
CASES = [
    # NIR: values
    Case("nir-string-weight", G, 2, "weight", nir_file(lambda: _graph(
        {"fc": _affine(w=np.array([[b"a"] * 4] * 3)), "lif": _lif(3)}))),
    Case("nir-bias-mismatch", G, 2, "bias", nir_file(lambda: _graph({"fc": _affine(b=np.zeros(5)), "lif": _lif(3)}))),
    Case("nir-nan-weight", G, 2, "NaN", nir_file(lambda: _graph(
        {"fc": _affine(w=np.full((3, 4), np.nan)), "lif": _lif(3)}))),
    Case("nir-tau-zero", G, 2, "tau", nir_file(lambda: _graph({"fc": _affine(), "lif": _lif(3, tau=np.zeros(3))}))),
    Case("nir-tau-negative", G, 2, "tau", nir_file(lambda: _graph(
        {"fc": _affine(), "lif": _lif(3, tau=np.full(3, -1e-3))}))),
    Case("nir-tau-nan", G, 2, "tau", nir_file(lambda: _graph(
        {"fc": _affine(), "lif": _lif(3, tau=np.full(3, np.nan))}))),
    Case("nir-tau-inf", G, 2, "tau", nir_file(lambda: _graph(
        {"fc": _affine(), "lif": _lif(3, tau=np.full(3, np.inf))}))),
    Case("nir-threshold-nan", G, 2, "threshold", nir_file(lambda: _graph(
        {"fc": _affine(), "lif": _lif(3, v_threshold=np.full(3, np.nan))}))),
    Case("nir-dt-negative", [*G, "--nir-dt", "-0.001"], 2, "dt", nir_file(lambda: _graph(
        {"fc": _affine(), "lif": _lif(3)}, meta={}))),
    Case("nir-dt-nan", [*G, "--nir-dt", "nan"], 2, "dt", nir_file(lambda: _graph({"fc": _affine(), "lif": _lif(3)}))),
    Case("nir-dt-meta-zero", G, 2, "dt", nir_file(lambda: _graph(
        {"fc": _affine(), "lif": _lif(3)}, meta={"snncompile.dt": 0.0}))),
    Case("nir-dt-meta-inf", G, 2, "dt", nir_file(lambda: _graph(
        {"fc": _affine(), "lif": _lif(3)}, meta={"snncompile.dt": np.inf}))),
    Case("nir-delay-nan", G, 2, "delay", nir_file(lambda: _graph(
        {"fc": _affine(), "d": nir.Delay(np.full(3, np.nan)), "lif": _lif(3)}))),
    Case("nir-delay-inf", G, 2, "delay", nir_file(lambda: _graph(
        {"fc": _affine(), "d": nir.Delay(np.full(3, np.inf)), "lif": _lif(3)}))),
    Case("nir-delay-negative", G, 2, "delay", nir_file(lambda: _graph(
        {"fc": _affine(), "d": nir.Delay(np.full(3, -2.0)), "lif": _lif(3)}))),
    # NIR: shapes and convolution geometry
    Case("nir-input-negative-shape", G, 2, "shape", nir_file(lambda: _graph(
        {"fc": _affine(), "lif": _lif(3)}, n_in=-4))),
    Case("nir-input-billion", G, 2, "memory", nir_file(lambda: _graph(
        {"fc": _affine(), "lif": _lif(3)}, n_in=10 ** 9))),
    Case("nir-weight-8gb-declared", G, 2, "memory", huge_weight),
    Case("nir-conv-stride-zero", G, 2, "stride", nir_file(conv(stride=np.array([0, 0])))),
    Case("nir-conv-stride-negative", G, 2, "stride", nir_file(conv(stride=np.array([-1, 1])))),
    Case("nir-conv-dilation-zero", G, 2, "dilation", nir_file(conv(dilation=np.array([0, 1])))),
    Case("nir-conv-padding-negative", G, 2, "padding", nir_file(conv(padding=np.array([-2, 1])))),
    Case("nir-conv-padding-huge", G, 2, "padding", nir_file(conv(padding=np.array([10 ** 6, 10 ** 6])))),
    Case("nir-conv-weight-1d", G, 2, "weight", nir_file(conv(weight=np.ones(18)))),
    # netx files: convolution geometry, sizes and HDF5 objects of the wrong kind
    Case("netx-conv-stride-zero", NX, 2, "stride", netx_file(stride=np.array([0, 0]))),
    Case("netx-conv-dilation-zero", NX, 2, "dilation", netx_file(dilation=np.array([0, 0]), padding=None)),
    Case("netx-conv-padding-negative", NX, 2, "padding", netx_file(padding=np.array([-1, -1]), flat=8,
                                                                  shape=np.array([2, 2, 2]))),
    Case("netx-conv-kernel-beyond-input", NX, 2, "no neurons", netx_file(
        weight=np.ones((2, 1, 9, 9), np.int32), padding=None, shape=np.array([2, -2, -2]), flat=8)),
    Case("netx-dense-zero-features", NX, 2, "at least one feature", netx_file(
        3, shape=np.array([0]), weight=np.zeros((0, 72), np.int32))),
    Case("netx-layer-is-dataset", NX, 2, "no `layer` group", layer_is_dataset),
    Case("netx-weight-is-group", NX, 2, "`weight` is a group", netx_file(
        3, _replace("weight", lambda g: g.create_group("weight")))),
    Case("netx-conv-weight-is-group", NX, 2, "`weight` is a group", netx_file(
        1, _replace("weight", lambda g: g.create_group("weight")))),
    Case("netx-bias-beyond-13-bits", NX, 2, "13-bit bias", netx_file(bias=np.array([1e300, 0.0]))),
    Case("netx-bias-fractional", NX, 2, "whole numbers", netx_file(bias=np.array([0.5, 0.0]))),
    # a file destination: a name ending in '/' names a folder, a FIFO there is no file to replace
    Case("export-file-trailing-slash", ["export", M, "--format", "netx", "-o", "m.net/"], 2, "ends with '/'",
         lambda d: (d / "m.net").write_bytes(b"keep")),
    Case("export-file-fifo", ["export", M, "--format", "netx", "-o", "m.net"], 2, "not a regular file", fifo("m.net")),
    Case("netx-weight-link-loop", NX, 2, "cannot read", netx_file(
        3, _replace("weight", lambda g: g.__setitem__("weight", h5py.SoftLink("/layer/3/weight"))))),
    # special files: refused by type, never opened (opening a FIFO blocks)
    Case("model-fifo", ["m.pt"], 2, "FIFO", fifo("m.pt")),
    Case("nir-fifo", G, 2, "FIFO", fifo("g.nir")),
    Case("input-fifo", [M, "--input", "x.npy"], 2, "FIFO", fifo("x.npy")),
    Case("sweep-spec-fifo", ["sweep", "s.toml"], 2, "FIFO", fifo("s.toml")),
    # sweeps
    Case("sweep-grid-above-limit", ["sweep", "s.toml"], 2, "max_cells", sweep_grid(2001)),
    Case("sweep-grid-above-own-limit", ["sweep", "s.toml"], 2, "above the limit of 3", sweep_grid(4, "max_cells = 3\n")),
    Case("sweep-no-input-simulate-false", ["sweep", "s.toml"], 2, "input =", lambda d: (d / "s.toml").write_text(
        'models = ["a.pt"]\nsimulate = false\n')),
    # declared sizes beyond the budget: refused by the header, nothing allocated
    Case("npy-header-1e13", [M, "--input", "x.npy"], 2, "memory", npy_header("x.npy", (10 ** 13, 1, 8, 8))),
    Case("npz-header-1e13", [M, "--input", "x.npz"], 2, "memory", npz_header),
    Case("steps-beyond-memory", [M, "--input", X, "--steps", "5000", "--target", "energy"], 2, "--steps"),
    Case("npz-zip-bomb", [M, "--input", "x.npz"], 2, "memory", zip_bomb),
    # checkpoint tensors: values that are not there, sizes declared beyond what is stored
    Case("ckpt-meta-module", ["m.pt", *SHAPE], 2, "meta device", meta_tensors(True)),
    Case("ckpt-meta-state-dict", ["m.pt", "--arch", "widemod:small", *SHAPE], 2, "meta device",
         meta_tensors(False)),
    Case("ckpt-zero-stride-4e9-state-dict", ["m.pt", "--arch", "widemod:wide", *SHAPE], 2,
         "4,000,000,000 elements over a storage of 4 B", zero_stride(False)),
    Case("ckpt-zero-stride-4e9-module", ["m.pt", *SHAPE], 2, "4,000,000,000 elements over a storage of 4 B",
         zero_stride(True)),
    Case("ckpt-quantized-buffer-in-module", ["m.pt", *SHAPE], 2, "quantized", quantized_buffer),
]


def test_corpus_ids_unique():
    assert len({c.id for c in CASES}) == len(CASES)


def _alarm(_sig, _frame):
    raise TimeoutError("the case blocked")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SNNCOMPILE_MEMORY_BUDGET", str(BUDGET))
    if case.setup:
        case.setup(tmp_path)
    before = _snapshot(tmp_path)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    try:
        code = main(case.args + ["--json"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    assert code == case.code, f"exit {code} (want {case.code}); stderr: {err}"
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"stdout must be one JSON object, got: {out!r}"
    doc = json.loads(lines[0])
    assert doc["exit_code"] == case.code and doc["hint"]
    assert case.phrase.lower() in (doc["error"] + " " + doc["hint"]).lower(), doc
    assert "error:" in err
    assert _snapshot(tmp_path) == before, "a failing run wrote or changed files"


@pytest.mark.parametrize("make", [deep_chain, long_loop], ids=["chain-1500", "loop-1050"])
def test_deep_nir_graphs_compile(make, tmp_path, capsys):
    """Graphs deeper than the recursion limit compile (no RecursionError) and simulate."""
    nir.write(tmp_path / "g.nir", make())
    x = np.random.default_rng(0).random((2, 4))
    np.save(tmp_path / "x.npy", x)
    code = main([str(tmp_path / "g.nir"), "--steps", "3", "--input", str(tmp_path / "x.npy"),
                 "--simulate", "--target", "energy", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["graph"]["neurons"] == 3
