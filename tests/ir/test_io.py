import numpy as np
import pytest
from nets import ResidualNet, conv_net

from snncompile.errors import SnnCompileError
from snncompile.frontend import trace_model
from snncompile.ir import load_ir, save_ir
from snncompile.sim import simulate


@pytest.mark.parametrize("make,shape", [(lambda: conv_net("s"), (1, 8, 8)), (ResidualNet, (20,))])
def test_roundtrip_preserves_graph_and_behaviour(tmp_path, make, shape):
    g = trace_model(make(), shape).graph
    path = save_ir(g, tmp_path / "m.ir.npz")
    h = load_ir(path)
    assert [(n, type(node).__name__, g.inputs(n)) for n, node in g.items()] == \
           [(n, type(node).__name__, h.inputs(n)) for n, node in h.items()]
    x = np.random.default_rng(0).random((4, 3, *shape))
    a, b = simulate(g, x), simulate(h, x)
    for k in a.spikes:
        np.testing.assert_array_equal(a.spikes[k], b.spikes[k])
    assert list(tmp_path.iterdir()) == [path]  # no temp files left behind


def test_load_rejects_non_ir(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, a=np.zeros(2))
    with pytest.raises(SnnCompileError, match="cannot read IR file"):
        load_ir(p)
