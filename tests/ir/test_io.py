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


def _format1_file(path, th: np.ndarray) -> None:
    """An IR file as the first format wrote it: a Neuron's dynamics as flat fields with a
    ``model`` string (and ``role`` "or" for an OR neuron), arrays beside the header."""
    import json

    def neuron(shape, source, **f):
        base = {"shape": list(shape), "source": source, "model": "lif", "v_threshold": 1.0, "v_reset": 0.0,
                "tau": None, "decay": None, "decay_input": True, "alive": None, "role": "", "strict": False,
                "syn_decay": None, "reset_by": None}
        return {**base, **f}

    w1, w2 = np.linspace(-1, 1, 24).reshape(6, 4), np.ones((6, 6))
    lin = {"bias": None, "mask": None, "gain": None, "binary": False, "alpha": None, "weight_bits": 32}
    nodes = [
        {"name": "x", "op": "input", "inputs": [], "attrs": {"shape": [4], "source": ""}, "arrays": []},
        {"name": "fc", "op": "linear", "inputs": ["x"], "attrs": {"shape": [6], "source": "fc", **lin},
         "arrays": [["weight", "0"]]},
        {"name": "lif", "op": "neuron", "inputs": ["fc"],
         "attrs": neuron((6,), "lif", tau=2.0, decay_input=False, v_threshold=None), "arrays": [["v_threshold", "1"]]},
        {"name": "fc2", "op": "linear", "inputs": ["lif"], "attrs": {"shape": [6], "source": "fc2", **lin},
         "arrays": [["weight", "2"]]},
        {"name": "or", "op": "neuron", "inputs": ["fc2"], "attrs": neuron((6,), "or", tau=1.0, role="or"),
         "arrays": []},
        {"name": "soft", "op": "neuron", "inputs": ["fc2"],
         "attrs": neuron((6,), "soft", model="if", v_reset=None, reset_by=0.5, strict=True), "arrays": []},
        {"name": "out", "op": "output", "inputs": ["or"], "attrs": {"shape": [6], "source": ""}, "arrays": []},
    ]
    header = {"format": "snncompile-ir/1", "name": "old", "meta": {}, "nodes": nodes,
              "graph": {"input_shape": [4], "step_mode": "s", "model_steps": None, "output_steps": False,
                        "output_time_reduced": False, "facts": [], "passes": [], "patch_mask": None}}
    np.savez_compressed(path, **{"0": w1, "1": th, "2": w2,
                                 "__graph__": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)})


def test_first_format_files_load_with_typed_dynamics(tmp_path):
    from snncompile.ir import Input, IRGraph, Linear, Neuron, Output
    from snncompile.ir.dynamics import IF, LIF, OrPool

    th = np.array([0.3, 0.5, 0.7, 0.9, 1.1, 1.3])
    _format1_file(tmp_path / "old.ir.npz", th)
    old = load_ir(tmp_path / "old.ir.npz")
    lif, orn, soft = (old.node(n).dynamics for n in ("lif", "or", "soft"))
    assert lif == LIF(tau=2.0, decay_input=False, v_threshold=th)
    assert orn == OrPool()
    assert soft == IF(v_reset=None, reset_by=0.5, strict=True)
    # the same network built with the typed constructors behaves the same, and so does a re-save
    g = IRGraph("new")
    g.add("x", Input((4,)))
    g.add("fc", Linear((6,), "fc", weight=np.linspace(-1, 1, 24).reshape(6, 4)), ["x"])
    g.add("lif", Neuron((6,), "lif", dynamics=LIF(tau=2.0, decay_input=False, v_threshold=th)), ["fc"])
    g.add("fc2", Linear((6,), "fc2", weight=np.ones((6, 6))), ["lif"])
    g.add("or", Neuron((6,), "or", dynamics=OrPool()), ["fc2"])
    g.add("soft", Neuron((6,), "soft", dynamics=IF(v_reset=None, reset_by=0.5, strict=True)), ["fc2"])
    g.add("out", Output((6,)), ["or"])
    resaved = load_ir(save_ir(old, tmp_path / "new.ir.npz"))
    assert resaved.node("lif").dynamics == lif
    x = np.random.default_rng(2).random((8, 3, 4)) * 2
    want = simulate(g, x)
    for h in (old, resaved):
        got = simulate(h, x)
        assert set(got.spikes) == set(want.spikes) and got.spikes["lif"].sum() > 0
        for k in want.spikes:
            np.testing.assert_array_equal(got.spikes[k], want.spikes[k])


def test_a_stored_unknown_model_is_a_clear_error(tmp_path):
    import json

    _format1_file(tmp_path / "old.ir.npz", np.ones(6))
    with np.load(tmp_path / "old.ir.npz") as d:
        arrays = {k: d[k] for k in d.files}
    header = json.loads(bytes(arrays["__graph__"]).decode())
    header["nodes"][2]["attrs"]["model"] = "izhikevich"
    arrays["__graph__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez_compressed(tmp_path / "bad.ir.npz", **arrays)
    with pytest.raises(SnnCompileError, match="izhikevich"):
        load_ir(tmp_path / "bad.ir.npz")
