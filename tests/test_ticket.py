"""Issue-3 acceptance: a ≥90%-sparse binary-weight ticket with a patch mask compiles to a
Lava network that holds exactly the nonzero, live synapses and spikes like PyTorch."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nets import TicketNet

import snncompile
from snncompile.ir import load_ir


@pytest.fixture(scope="module")
def ticket(tmp_path_factory):
    d = tmp_path_factory.mktemp("ticket")
    model = TicketNet(sparsity=0.92, seed=3)
    torch.save({"state_dict": model.state_dict(), "input_shape": [1, 8, 8], "steps": 6}, d / "ticket.pt")
    from sklearn.datasets import load_digits

    x = (load_digits().images[:40] / 16.0)[:, None].astype(np.float32)
    np.save(d / "x.npy", x)
    return model, d


def _jacobian_nnz(fn, in_shape) -> np.ndarray:
    """Nonzero pattern (out, in) of a linear map, computed by autograd (independent of our
    conv/linear matrices)."""
    j = torch.autograd.functional.jacobian(fn, torch.zeros(in_shape, dtype=torch.float64))
    return (j.reshape(-1, int(np.prod(in_shape))) != 0).numpy()


@pytest.mark.lava
def test_ticket_compiles_to_exact_live_synapses_and_spikes(ticket):
    model, d = ticket
    weights = [model.conv1.weight, model.conv2.weight, model.fc.weight]
    sparsity = 1 - sum(int((w != 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert sparsity >= 0.9
    rep = snncompile.compile(d / "ticket.pt", "lava", arch="nets:TicketNet", input=d / "x.npy",
                             simulate_on_target=True, outdir=d / "out")
    sim = rep.simulation
    assert sim["spike_agreement"] == 1.0 and sim["prediction_agreement"] == 1.0
    g = load_ir(d / "out" / "model.ir.npz")

    def alive(name, shape):
        a = g.node(name).alive
        return np.ones(shape, bool).ravel() if a is None else a.ravel()

    k1, k_or, k2 = alive("sn1", (8, 8, 8)), alive("pool", (8, 4, 4)), alive("sn2", (16, 4, 4))
    # every masked patch is gone, in every channel
    masked = (model.patch_mask.numpy() == 0)
    assert not k2.reshape(16, 4, 4)[:, masked].any()
    m64 = model.double()
    j1 = _jacobian_nnz(lambda x: m64.conv1(x[None])[0], (1, 8, 8))
    j2 = _jacobian_nnz(lambda x: m64.conv2(x[None])[0], (8, 4, 4))
    j_or = _jacobian_nnz(lambda x: F.avg_pool2d(x[None], 2)[0], (8, 8, 8))
    jfc = (m64.fc.weight.detach().numpy() != 0)
    expected = (j1[k1].sum() + j_or[np.ix_(k_or, k1)].sum() + j2[np.ix_(k2, k_or)].sum()
                + jfc[:, k2].sum())
    assert rep.lowering["synapses"] == expected
    dense = sum(r.synapses_dense for r in rep.layers)
    assert rep.lowering["synapses"] < 0.1 * dense
    removed = {p["name"]: p for p in rep.passes}
    assert removed["prune_synapses"]["synapses_removed"] > 0
    assert removed["mask_patches"]["neurons_removed"] == 16 * int(masked.sum())
    assert removed["binarize"]["bits_saved"] > 0
    impls = {i["impl"] for i in rep.lowering["implementations"]}
    assert "sparse" in impls
