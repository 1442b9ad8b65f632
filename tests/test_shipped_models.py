"""Issue 6: the shipped tickets compile with all passes and run on Lava spike for spike."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import snncompile
from snncompile.frontend import load_model
from snncompile.ir import load_ir

MODELS = {
    "digits_scnn_ticket": None,
    "digits_scnn_binw_ticket": None,
    "digits_spikformer_convpep": "models.digits_arch:digits_spikformer",
}


def _path(root, name):
    return root / "models" / f"{name}.pt"


@pytest.fixture(scope="module")
def root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cards_and_sizes(root, name):
    p = _path(root, name)
    assert p.stat().st_size < 2 * 1024 * 1024
    card = json.loads((root / "models" / f"{name}.json").read_text())
    assert card["test_accuracy"] >= 0.85 and card["dense_test_accuracy"] >= card["test_accuracy"] - 0.05
    model = load_model(p, arch=MODELS[name]).module
    if name == "digits_spikformer_convpep":
        convs = [model.pep.stage1[0].weight, model.pep.stage2[0].weight]
        assert int((model.patch_mask == 0).sum()) >= 4          # ≥ 25% of 16 patches masked
    else:
        convs = [m.weight for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    zeros = sum(int((w == 0).sum()) for w in convs) / sum(w.numel() for w in convs)
    assert zeros >= (0.8 if "spikformer" in name else 0.9)
    if "binw" in name or "spikformer" in name:
        for w in convs:
            for ch in w.detach().abs().reshape(w.shape[0], -1):
                assert len(torch.unique(ch[ch != 0])) <= 1    # one magnitude α per output channel


@pytest.mark.lava
@pytest.mark.parametrize("name", sorted(MODELS))
def test_shipped_model_on_lava(root, tmp_path, name):
    rep = snncompile.compile(_path(root, name), "lava", arch=MODELS[name], input=root / "models/digits_test.npz",
                             samples=50, simulate_on_target=True, outdir=tmp_path)
    sim = rep.simulation
    assert sim["spike_agreement"] == 1.0 and sim["prediction_agreement"] == 1.0
    assert sim["accuracy"] >= 0.8
    e = rep.energy
    assert e.variants.snn.energy_pj > 0 and e.savings.snn_binary_vs_ann > 1
    removed = {p["name"]: p for p in rep.passes}
    assert removed["prune_synapses"]["synapses_removed"] > 0
    if name == "digits_spikformer_convpep":
        assert rep.lowering["custom_processes"] and removed["mask_patches"]["neurons_removed"] > 0


@pytest.mark.lava
def test_ticket_synapses_equal_its_nonzero_weights(root, tmp_path):
    """Compiled synapses = nonzero-weight (pre, post) pairs of the source weights, counted by
    autograd Jacobians, between the neurons the compiled network keeps."""
    p = _path(root, "digits_scnn_ticket")
    rep = snncompile.compile(p, "lava", outdir=tmp_path)
    g = load_ir(tmp_path / "model.ir.npz")
    model = load_model(p).module.double()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    fc = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][0]

    def jac(fn, shape):
        # vectorize: one batched backward pass (vmap) instead of one per output element
        j = torch.autograd.functional.jacobian(fn, torch.zeros(shape, dtype=torch.float64), vectorize=True)
        return (j.reshape(-1, int(np.prod(shape))) != 0).numpy()

    from snncompile.ir import Neuron

    sn = g.of_type(Neuron)
    alive = [np.ones(g.node(n).size, bool) if g.node(n).alive is None else g.node(n).alive.ravel() for n in sn]
    k1, k2, k_or, k_out = alive
    j1 = jac(lambda x: F.conv2d(x[None], convs[0].weight, None, 1, 1)[0], (1, 8, 8))
    j2 = jac(lambda x: F.conv2d(x[None], convs[1].weight, None, 1, 1)[0], (8, 8, 8))
    j_or = jac(lambda x: F.avg_pool2d(x[None], 2)[0], (16, 8, 8))
    jfc = fc.weight.detach().numpy() != 0
    expected = (j1[k1].sum() + j2[np.ix_(k2, k1)].sum() + j_or[np.ix_(k_or, k2)].sum()
                + jfc[np.ix_(k_out, k_or)].sum())
    assert rep.lowering["synapses"] == expected
