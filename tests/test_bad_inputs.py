"""Bad input corpus: every malformed file, flag or model ends with one message naming the
problem and the fix, its documented exit code, no traceback, and nothing written.

Each case builds its files in a fresh folder, runs the CLI there with ``--json`` (stdout
must be exactly one error object) and checks that no file appeared or changed.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import layer, neuron
from torch import nn

from snncompile.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "digits_scnn.pt"
INPUTS = ROOT / "models" / "digits_test.npz"

# ---- files the cases use ---------------------------------------------------------------------


def _save_module(path: Path, model: nn.Module, **meta) -> None:
    torch.save({"model": model, **meta} if meta else model, path)


def _mlp(neuron_layer: nn.Module | None = None) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(layer.Linear(4, 3), neuron_layer or neuron.IFNode())


def _state_dict_ckpt(d: Path, **meta) -> None:
    torch.save({"state_dict": _mlp().state_dict(), **meta}, d / "m.pt")


ARCH = '''
import torch
from torch import nn
from spikingjelly.activation_based import layer, neuron


def good():
    return nn.Sequential(layer.Linear(4, 3), neuron.IFNode())


def raises():
    raise RuntimeError("weights server unreachable")


def not_a_module():
    return 42


def wrong_size():
    return nn.Sequential(layer.Linear(5, 3), neuron.IFNode())


def needs_args(width):
    return nn.Sequential(layer.Linear(width, 3), neuron.IFNode())


class MyLIF(neuron.LIFNode):
    def neuronal_charge(self, x):  # a different charge equation than spikingjelly's LIF
        self.v = self.v * 0.5 + x * x


class HandLIF(nn.Module):
    """A hand-written module that keeps state but is no IF/LIF/PLIF neuron (a squared membrane)."""

    def __init__(self):
        super().__init__()
        self.v = 0.0

    def forward(self, x):
        self.v = 0.5 * self.v * self.v + x
        spike = (self.v >= 1.0).float()
        self.v = self.v * (1 - spike)
        return spike


def lif_subclass():
    return nn.Sequential(layer.Linear(4, 3), MyLIF())


def hand_lif():
    return nn.Sequential(layer.Linear(4, 3), HandLIF())


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 3, batch_first=True)
        self.sn = neuron.IFNode()

    def forward(self, x):
        return self.sn(self.lstm(x)[0])


def lstm():
    return LSTMNet()
'''


def arch(d: Path) -> None:
    (d / "archmod.py").write_text(ARCH)
    _state_dict_ckpt(d)


def arch_ckpt_for(factory: str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        arch(d)
        import importlib.util

        spec = importlib.util.spec_from_file_location("archmod_tmp", d / "archmod.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        model = getattr(mod, factory)()
        torch.save({"state_dict": model.state_dict()}, d / "m.pt")
    return setup


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def evil_pt(d: Path) -> None:
    torch.save({"state_dict": {}, "x": _Evil()}, d / "m.pt")


def legacy_pt(d: Path) -> None:
    torch.save(_mlp().state_dict(), d / "m.pt", _use_new_zipfile_serialization=False)


def plain_pickle(d: Path) -> None:
    with open(d / "m.pt", "wb") as fh:
        pickle.dump({"state_dict": {}}, fh)


def truncated(d: Path) -> None:
    torch.save(_mlp(), d / "full.pt")
    data = (d / "full.pt").read_bytes()
    (d / "m.pt").write_bytes(data[: len(data) // 2])
    (d / "full.pt").unlink()


def zip_not_torch(d: Path) -> None:
    with zipfile.ZipFile(d / "m.pt", "w") as z:
        z.writestr("hello.txt", "not a checkpoint")


def module_with(model: nn.Module, **meta) -> Callable[[Path], None]:
    return lambda d: _save_module(d / "m.pt", model, **meta)


def nan_threshold() -> nn.Module:
    return _mlp(neuron.IFNode(v_threshold=float("nan")))


def inf_weights() -> nn.Module:
    m = _mlp()
    with torch.no_grad():
        m[0].weight[1, 2] = float("inf")
    return m


def _bn_nan() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(layer.Linear(4, 3), nn.BatchNorm1d(3), neuron.IFNode()).eval()
    m[1].running_var[0] = float("nan")
    return m


def relu_only() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU())


def npy(name: str, array) -> Callable[[Path], None]:
    return lambda d: np.save(d / name, array, allow_pickle=True)


def npz(name: str, **arrays) -> Callable[[Path], None]:
    return lambda d: np.savez(d / name, **arrays)


def text(name: str, body: str) -> Callable[[Path], None]:
    return lambda d: (d / name).write_text(body)


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(d: Path) -> None:
        for s in setups:
            s(d)
    return run


CHIP = """name = "mychip"
source = "made up for a test"
cores_per_chip = 128
neurons_per_core = {neurons}
input_axons_per_core = {axons}
output_axons_per_core = 4096
synapse_bits_per_core = 1048576
synapse_index_bits = 10
max_weight_bits = 8
weight_sharing = false
"""


def chip(**kw) -> Callable[[Path], None]:
    vals = {"neurons": 1024, "axons": 4096, **kw}
    return text("chip.toml", CHIP.format(**vals))


def digits_subset(n: int) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        with np.load(INPUTS) as z:
            np.savez(d / "few.npz", x=z["x"][:n], y=z["y"][:n])
    return setup


def obj_mask(d: Path) -> None:
    with open(d / "masks.pkl", "wb") as fh:
        pickle.dump({"0.weight": _Evil()}, fh)


def wrong_masks(d: Path) -> None:
    with open(d / "masks.pkl", "wb") as fh:
        pickle.dump([np.ones((7, 7))], fh)


def dir_named(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).mkdir(parents=True)


def file_named(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).write_text("keep me")


# ---- the corpus --------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    args: list[str]
    code: int
    phrase: str
    setup: Callable[[Path], None] | None = None


M, X = str(MODEL), str(INPUTS)
ARCH_GOOD = ["m.pt", "--arch", "archmod:good", "--steps", "2"]

CASES = [
    # model files
    Case("missing-model", ["nope.pt"], 2, "model file not found"),
    Case("empty-model", ["m.pt"], 2, "not a PyTorch checkpoint", text("m.pt", "")),
    Case("garbage-model", ["m.pt"], 2, "not a PyTorch checkpoint", text("m.pt", "\x00garbage")),
    Case("truncated-model", ["m.pt"], 2, "not a PyTorch checkpoint", truncated),
    Case("zip-not-torch", ["m.pt"], 2, "not a PyTorch checkpoint", zip_not_torch),
    Case("model-is-folder", ["m.pt"], 2, "is a directory", dir_named("m.pt")),
    Case("evil-pickle", ["m.pt"], 4, "refusing to unpickle", evil_pt),
    Case("legacy-torch-save", ["m.pt"], 4, "legacy", legacy_pt),
    Case("plain-pickle", ["m.pt"], 4, "plain pickle", plain_pickle),
    Case("state-dict-without-arch", ["m.pt", "--steps", "2"], 2, "--arch", lambda d: _state_dict_ckpt(d)),
    # --arch
    Case("arch-missing-module", ["m.pt", "--arch", "nomod:f", "--steps", "2"], 2, "nomod", arch),
    Case("arch-missing-factory", ["m.pt", "--arch", "archmod:nothere", "--steps", "2"], 2, "nothere", arch),
    Case("arch-bad-syntax", ["m.pt", "--arch", "archmod", "--steps", "2"], 2, "MODULE:FACTORY", arch),
    Case("arch-raises", ["m.pt", "--arch", "archmod:raises", "--steps", "2"], 2, "weights server unreachable",
         arch),
    Case("arch-not-module", ["m.pt", "--arch", "archmod:not_a_module", "--steps", "2"], 2, "int", arch),
    Case("arch-needs-args", ["m.pt", "--arch", "archmod:needs_args", "--steps", "2"], 2, "needs_args", arch),
    Case("arch-wrong-sizes", ["m.pt", "--arch", "archmod:wrong_size", "--steps", "2"], 2, "does not fit", arch),
    # checkpoint metadata
    Case("steps-string", ["m.pt", "--arch", "archmod:good"], 2, "steps",
         both(arch, lambda d: _state_dict_ckpt(d, steps="eight"))),
    Case("steps-zero-meta", ["m.pt", "--arch", "archmod:good"], 2, "steps",
         both(arch, lambda d: _state_dict_ckpt(d, steps=0))),
    Case("input-shape-meta-bad", ["m.pt", "--arch", "archmod:good", "--steps", "2"], 2, "input_shape",
         both(arch, lambda d: _state_dict_ckpt(d, input_shape="4x")),),
    Case("input-shape-meta-negative", ["m.pt", "--arch", "archmod:good", "--steps", "2"], 2, "input_shape",
         both(arch, lambda d: _state_dict_ckpt(d, input_shape=[-4])),),
    # models we cannot compile
    Case("lstm", ["m.pt", "--arch", "archmod:lstm", "--steps", "2", "--input-shape", "2,4"], 3, "LSTM",
         arch_ckpt_for("lstm")),
    Case("no-neurons", ["m.pt", "--steps", "2", "--input-shape", "4"], 3, "ReLU", module_with(relu_only())),
    Case("lif-subclass", ["m.pt", "--arch", "archmod:lif_subclass", "--steps", "2", "--input-shape", "4"], 3,
         "MyLIF", arch_ckpt_for("lif_subclass")),
    Case("hand-written-neuron", ["m.pt", "--arch", "archmod:hand_lif", "--steps", "2", "--input-shape", "4"], 3,
         "HandLIF", arch_ckpt_for("hand_lif")),
    Case("nan-threshold", ["m.pt", "--steps", "2", "--input-shape", "4"], 2, "v_threshold",
         module_with(nan_threshold())),
    Case("inf-weight", ["m.pt", "--steps", "2", "--input-shape", "4"], 2, "inf", module_with(inf_weights())),
    # inputs
    Case("input-missing", [M, "--input", "none.npy"], 2, "input file not found"),
    Case("input-object-npy", [M, "--input", "x.npy"], 4, "object", npy("x.npy", np.array([{"a": 1}], dtype=object))),
    Case("input-object-npz", [M, "--input", "x.npz"], 4, "object",
         npz("x.npz", x=np.array([None, 1], dtype=object))),
    Case("input-zero-samples", [M, "--input", "x.npy"], 2, "no samples", npy("x.npy", np.zeros((0, 1, 8, 8)))),
    Case("labels-strings", [M, "--input", "x.npz"], 2, "labels",
         npz("x.npz", x=np.zeros((2, 1, 8, 8)), y=np.array(["cat", "dog"]))),
    Case("labels-wrong-count", [M, "--input", "x.npz"], 2, "labels",
         npz("x.npz", x=np.zeros((2, 1, 8, 8)), y=np.array([1, 2, 3]))),
    Case("labels-float", [M, "--input", "x.npz"], 2, "labels",
         npz("x.npz", x=np.zeros((2, 1, 8, 8)), y=np.array([0.5, 1.5]))),
    Case("input-wrong-shape", [M, "--input", "x.npy"], 2, "per-sample shape", npy("x.npy", np.zeros((4, 3, 8, 8)))),
    Case("input-nan", [M, "--input", "x.npy"], 2, "NaN", npy("x.npy", np.full((2, 1, 8, 8), np.nan))),
    Case("input-inf", [M, "--input", "x.npy"], 2, "inf", npy("x.npy", np.full((2, 1, 8, 8), np.inf))),
    Case("input-strings", [M, "--input", "x.npy"], 2, "numbers", npy("x.npy", np.array([["a", "b"]]))),
    Case("input-complex", [M, "--input", "x.npy"], 2, "not real numbers",   # was cast, the imaginary part dropped
         npy("x.npy", np.ones((2, 1, 8, 8), np.complex64))),
    Case("input-npz-no-x", [M, "--input", "x.npz"], 2, "x", npz("x.npz", data=np.zeros((2, 1, 8, 8)))),
    Case("input-corrupt-npz", [M, "--input", "x.npz"], 2, "cannot read", text("x.npz", "PK\x03\x04garbage")),
    Case("input-bad-extension", [M, "--input", "x.csv"], 2, ".npy", text("x.csv", "1,2,3")),
    Case("samples-more-than-input", [M, "--input", "few.npz", "--samples", "1000"], 2, "has 20 samples",
         digits_subset(20)),
    Case("samples-zero", [M, "--input", X, "--samples", "0"], 2, "--samples"),
    Case("samples-negative", [M, "--input", X, "--samples", "-3"], 2, "--samples"),
    # CLI values
    Case("steps-zero", [M, "--steps", "0"], 2, "--steps"),
    Case("steps-huge", [M, "--steps", "1000000000"], 2, "--steps"),
    Case("steps-not-int", [M, "--steps", "four"], 2, "--steps"),
    Case("timeout-nan", [M, "--timeout", "nan"], 2, "--timeout"),
    Case("timeout-zero", [M, "--input", X, "--simulate", "--samples", "2", "--timeout", "0"], 2, "--timeout"),
    Case("timeout-negative", [M, "--input", X, "--simulate", "--samples", "2", "--timeout", "-5"], 2, "--timeout"),
    Case("timeout-inf", [M, "--timeout", "inf"], 2, "--timeout"),
    Case("unknown-target", [M, "--target", "loihi9"], 2, "loihi9"),
    Case("unknown-flag", [M, "--turbo"], 2, "--turbo"),
    Case("passes-and-no-passes", [M, "--passes", "binarize", "--no-passes"], 2, "--no-passes"),
    Case("unknown-pass", [M, "--passes", "quantum"], 2, "unknown pass"),
    Case("check-without-simulate", [M, "--check", "-o", "out"], 2, "--check"),
    Case("simulate-without-input", [M, "--simulate"], 2, "--simulate needs inputs"),
    Case("fixed-point-energy-target", [M, "--target", "energy", "--fixed-point"], 2, "need the lava or netx target"),
    Case("emit-energy-target", [M, "--target", "energy", "--emit", "stock"], 2, "--emit"),
    Case("export-netx-two-files", ["export", M, "--format", "netx", "-o", "a.net", "--output-file", "b.net"], 2,
         "pass only -o FILE"),   # b.net was written, -o a.net silently ignored
    Case("keep-ratio-nan", [M, "--target", "energy", "--keep-ratio", "nan"], 2, "--keep-ratio = nan"),   # the flag,
    Case("keep-ratio-above-one", [M, "--target", "energy", "--keep-ratio", "1.5"], 2, "--keep-ratio 0.7"),  # not keep_ratio=
    Case("input-shape-bad", ["m.pt", "--steps", "2", "--input-shape", "4x"], 2, "--input-shape",
         module_with(_mlp())),
    Case("input-shape-zero", ["m.pt", "--steps", "2", "--input-shape", "0"], 2, "--input-shape",
         module_with(_mlp())),
    # energy models and firing rates
    Case("energy-model-unknown", [M, "--target", "energy", "--energy-model", "7nm"], 2, "7nm"),
    Case("energy-model-missing-file", [M, "--target", "energy", "--energy-model", "e.toml"], 2, "e.toml"),
    Case("energy-model-corrupt", [M, "--target", "energy", "--energy-model", "e.toml"], 2, "e.toml",
         text("e.toml", "this is [not toml")),
    Case("energy-model-negative", [M, "--target", "energy", "--energy-model", "e.toml"], 2, "negative",
         text("e.toml", 'name = "x"\nsource = "test"\nunits = "pJ"\n[ops]\nmac = -1.0\nac = 0.1\n')),
    Case("firing-rate-above-one", [M, "--target", "energy", "--firing-rates", "1.5"], 2, "firing rate"),
    Case("firing-rate-negative", [M, "--target", "energy", "--firing-rates", "-0.1"], 2, "firing rate"),
    Case("firing-rate-word", [M, "--target", "energy", "--firing-rates", "fast"], 2, "firing rate"),
    Case("firing-rate-unknown-layer", [M, "--target", "energy", "--firing-rates", "nolayer=0.1"], 2, "nolayer"),
    Case("firing-rate-bad-json", [M, "--target", "energy", "--firing-rates", "r.json"], 2, "r.json",
         text("r.json", "{not json")),
    # chip profiles
    Case("chip-unknown", [M, "--fixed-point", "--chip", "loihi9"], 2, "loihi9"),
    Case("chip-zero-neurons", [M, "--fixed-point", "--chip", "chip.toml"], 2, "neurons_per_core", chip(neurons=0)),
    Case("chip-string-values", [M, "--fixed-point", "--chip", "chip.toml"], 2, "neurons_per_core",
         chip(neurons='"many"')),
    Case("chip-negative-axons", [M, "--fixed-point", "--chip", "chip.toml"], 2, "input_axons_per_core",
         chip(axons=-5)),
    Case("chip-missing-key", [M, "--fixed-point", "--chip", "chip.toml"], 2, "cores_per_chip",
         text("chip.toml", 'name = "x"\nneurons_per_core = 10\n')),
    Case("chip-corrupt", [M, "--fixed-point", "--chip", "chip.toml"], 2, "chip.toml", text("chip.toml", "[[[")),
    # masks
    Case("masks-missing", ["m.pt", "--steps", "2", "--input-shape", "4", "--masks", "nope.pkl"], 2, "nope.pkl",
         module_with(_mlp())),
    Case("masks-unsafe", ["m.pt", "--steps", "2", "--input-shape", "4", "--masks", "masks.pkl"], 4, "masks.pkl",
         both(module_with(_mlp()), obj_mask)),
    Case("masks-wrong-shape", ["m.pt", "--steps", "2", "--input-shape", "4", "--masks", "masks.pkl"], 2, "shape",
         both(module_with(_mlp()), wrong_masks)),
    Case("patch-mask-wrong-shape", [M, "--patch-mask", "p.npy"], 2, "patch mask", npy("p.npy", np.ones((3, 3)))),
    Case("patch-mask-not-binary", [M, "--patch-mask", "p.npy"], 2, "patch mask", npy("p.npy", np.full((4, 4), 0.5))),
    Case("patch-mask-object", [M, "--patch-mask", "p.npy"], 4, "object",
         npy("p.npy", np.array([None] * 4, dtype=object))),
    # outputs
    Case("outdir-is-file", [M, "-o", "out"], 2, "out", file_named("out")),
    Case("outdir-under-file", [M, "-o", "f/out"], 2, "f", file_named("f")),
    Case("plot-under-file", [M, "--target", "energy", "--plot", "f/e.png"], 2, "f", file_named("f")),
    Case("plot-not-png", [M, "--target", "energy", "--plot", "e.jpg"], 2, ".png"),
    Case("report-json-is-folder", [M, "-o", "out"], 2, "report.json", dir_named("out/report.json")),
    Case("ir-file-is-folder", [M, "-o", "out"], 2, "model.ir.npz", dir_named("out/model.ir.npz")),
    Case("plot-is-folder", [M, "--target", "energy", "--plot", "e.png"], 2, "folder", dir_named("e.png")),
    # more of each kind
    Case("input-is-folder", [M, "--input", "x.npy"], 2, "x.npy", dir_named("x.npy")),
    Case("samples-not-int", [M, "--input", X, "--samples", "many"], 2, "--samples"),
    Case("timeout-word", [M, "--timeout", "soon"], 2, "--timeout"),
    Case("firing-rate-nan", [M, "--target", "energy", "--firing-rates", "nan"], 2, "firing rate"),
    Case("energy-model-folder", [M, "--target", "energy", "--energy-model", "e.toml"], 2, "e.toml",
         dir_named("e.toml")),
    Case("chip-folder", [M, "--fixed-point", "--chip", "chip.toml"], 2, "chip.toml", dir_named("chip.toml")),
    Case("chip-unknown-key", [M, "--fixed-point", "--chip", "chip.toml"], 2, "neurons_per_cor",
         text("chip.toml", CHIP.format(neurons=1024, axons=4096) + "neurons_per_cor = 5\n")),
    Case("masks-folder", ["m.pt", "--steps", "2", "--input-shape", "4", "--masks", "masks.pkl"], 2, "masks.pkl",
         both(module_with(_mlp()), dir_named("masks.pkl"))),
    Case("arch-import-fails", ["m.pt", "--arch", "brokenmod:f", "--steps", "2"], 2, "brokenmod",
         both(arch, text("brokenmod.py", "import not_a_real_package_xyz\n"))),
    Case("input-shape-negative", ["m.pt", "--steps", "2", "--input-shape", "-4"], 2, "--input-shape",
         module_with(_mlp())),
    Case("nan-batchnorm-stats", ["m.pt", "--steps", "2", "--input-shape", "4"], 2, "NaN", module_with(
         _bn_nan())),
    Case("workers-zero", [M, "--input", X, "--simulate", "--workers", "0"], 2, "--workers"),
    Case("workers-without-simulate", [M, "--workers", "2"], 2, "nothing is simulated"),
    Case("onnx-without-outdir", [M, "--target", "onnx"], 2, "no output folder"),
    Case("nir-without-outdir", [M, "--target", "nir"], 2, "no output folder"),
    Case("sweep-missing-spec", ["sweep", "nope.toml"], 2, "nope.toml"),
    Case("sweep-bad-spec", ["sweep", "s.toml"], 2, "precision", text("s.toml", 'models = ["a.pt"]\n'
         'precision = ["double"]\nsimulate = false\n')),
    Case("sweep-unknown-key", ["sweep", "s.toml"], 2, "modells", text("s.toml", 'modells = ["a.pt"]\n')),
    # verbs
    Case("export-without-outdir", ["export", M], 2, "output folder"),
    Case("inspect-missing", ["inspect", "nope.pt"], 2, "model file not found"),
    Case("unknown-verb-file", ["compile"], 2, "model"),
]


def _snapshot(d: Path) -> dict[str, tuple[float, int]]:
    out = {}
    for p in sorted(d.rglob("*")):
        st = p.stat()
        out[str(p.relative_to(d))] = (st.st_mtime_ns, st.st_size if p.is_file() else -1)
    return out


def test_corpus_is_large_and_unique():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if case.setup:
        case.setup(tmp_path)
    before = _snapshot(tmp_path)
    code = main(case.args + ["--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    assert code == case.code, f"exit {code} (want {case.code}); stderr: {err}"
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"stdout must be one JSON object, got: {out!r}"
    doc = json.loads(lines[0])
    assert set(doc) == {"error", "hint", "exit_code"} and doc["exit_code"] == case.code
    assert case.phrase.lower() in (doc["error"] + " " + doc["hint"]).lower(), doc
    assert doc["hint"], "every failure names a fix"
    assert "error:" in err
    assert _snapshot(tmp_path) == before, "a failing run wrote or changed files"
    assert not (tmp_path / "pwned").exists()
