"""Checkpoint loading: containers, safety, and one clear error per bad input."""

import pickle

import pytest
import torch
import torch.nn.utils.prune  # noqa: F401  (not imported by torch itself: the test must not depend on order)
from spikingjelly.activation_based import layer, neuron
from torch import nn

from snncompile.errors import EXIT_UNSAFE, EXIT_USAGE, SnnCompileError
from snncompile.frontend import load_model


def make_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(layer.Linear(4, 3), neuron.LIFNode(tau=2.0)).eval()


class Custom(nn.Module):  # a class outside torch/spikingjelly: unpickling it runs our code
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.sn = neuron.IFNode()

    def forward(self, x):
        return self.sn(self.fc(x))


def test_whole_module_and_metadata(tmp_path):
    p = tmp_path / "m.pt"
    torch.save({"model": make_net(), "input_shape": [4], "T": 5, "args": None}, p)
    loaded = load_model(p)
    assert isinstance(loaded.module[1], neuron.LIFNode)
    assert loaded.meta == {"input_shape": (4,), "steps": 5}  # checked and normalised (schema.META)
    assert not loaded.module.training


def test_state_dict_containers_and_prefixes(tmp_path):
    net = make_net()
    sd = {"module." + k: v for k, v in net.state_dict().items()}
    for i, obj in enumerate([sd, {"state_dict": sd, "epoch": 3}, {"model": sd}]):
        p = tmp_path / f"sd{i}.pt"
        torch.save(obj, p)
        loaded = load_model(p, arch="tests.frontend.test_load:make_net")
        for k, v in net.state_dict().items():
            torch.testing.assert_close(loaded.module.state_dict()[k], v)


def test_state_dict_without_arch_is_explained(tmp_path):
    p = tmp_path / "sd.pt"
    torch.save(make_net().state_dict(), p)
    with pytest.raises(SnnCompileError, match="holds only weights") as e:
        load_model(p)
    assert "--arch" in e.value.hint and e.value.exit_code == EXIT_USAGE


def test_state_dict_that_does_not_fit(tmp_path):
    p = tmp_path / "sd.pt"
    torch.save({"0.weight": torch.zeros(2, 2)}, p)
    with pytest.raises(SnnCompileError, match="does not fit the --arch model"):
        load_model(p, arch="tests.frontend.test_load:make_net")


def test_prune_reparametrization_is_applied(tmp_path):
    net = make_net()
    torch.nn.utils.prune.l1_unstructured(net[0], "weight", amount=0.5)
    p = tmp_path / "pruned.pt"
    torch.save(net.state_dict(), p)  # weight_orig + weight_mask
    loaded = load_model(p, arch="tests.frontend.test_load:make_net")
    w = loaded.module[0].weight
    assert int((w == 0).sum()) == 6
    torch.testing.assert_close(w, net[0].weight)


def test_missing_file(tmp_path):
    with pytest.raises(SnnCompileError, match="model file not found") as e:
        load_model(tmp_path / "nope.pt")
    assert e.value.exit_code == EXIT_USAGE


def test_corrupt_file(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(make_net(), good)
    for name, data in [("garbage.pt", b"not a checkpoint at all"),
                       ("truncated.pt", good.read_bytes()[: len(good.read_bytes()) // 2])]:
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(SnnCompileError, match=r"cannot (read|load)") as e:
            load_model(p)
        assert e.value.exit_code == EXIT_USAGE


def test_unsafe_pickle_is_refused_with_the_global_named(tmp_path):
    p = tmp_path / "custom.pt"
    torch.save(Custom(), p)
    with pytest.raises(SnnCompileError, match=r"test_load\.Custom") as e:
        load_model(p)
    assert e.value.exit_code == EXIT_UNSAFE and "--trust-pickle" in e.value.hint
    loaded = load_model(p, trust_pickle=True)
    assert type(loaded.module).__name__ == "Custom"


def test_allowlist_holds_classes_of_the_safe_packages_only():
    from snncompile.frontend.load import allowed_globals

    lif = f"{neuron.LIFNode.__module__}.LIFNode"   # the name a checkpoint holds: its defining module's
    names = [lif, "torch.nn.modules.conv.Conv2d",
             "torch.nn.utils.prune.L1Unstructured", "collections.OrderedDict", "torch.nn.parameter.Parameter",
             "torch.nn.modules.conv.F",                      # a module, not a class
             "torch.nn.modules.linear.Tensor",               # a class imported from elsewhere
             "torch.nn.modules.no_such_module.X",            # no such module
             "torch.nn.modules.conv.NoSuchClass",
             "torch.nn.modules_evil.Conv2d",                 # a package that only starts alike
             "builtins.exec", "test_load.Custom", "os.system"]
    allowed = allowed_globals(names)
    assert sorted(allowed) == sorted(names[:5])
    assert allowed[lif] is neuron.LIFNode
    assert allowed["torch.nn.modules.conv.Conv2d"] is nn.Conv2d


class _Evil:
    def __reduce__(self):
        return (exec, ("print('pwned')",))   # (not print: Ray, once started in the process, replaces it)


def test_malicious_reduce_is_never_executed(tmp_path, capsys):
    p = tmp_path / "evil.pt"
    torch.save({"model": make_net(), "x": _Evil()}, p, pickle_module=pickle)
    with pytest.raises(SnnCompileError) as e:
        load_model(p)
    assert "builtins.exec" in e.value.message
    assert "pwned" not in capsys.readouterr().out


def test_arch_errors(tmp_path):
    p = tmp_path / "sd.pt"
    torch.save(make_net().state_dict(), p)
    for arch, msg in [("nocolon", "package.module:factory"), ("no_such_mod:f", "cannot import"),
                      ("tests.frontend.test_load:missing", "no callable")]:
        with pytest.raises(SnnCompileError, match=msg):
            load_model(p, arch=arch)


class ComputesInInit(nn.Module):
    """A constructor that computes with tensor values and keeps a non-persistent buffer:
    it cannot be built on the meta device, so the loader builds it the ordinary way."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.gain = float(torch.tensor([2.0]).sum())           # .item()-like on a meta tensor fails
        self.register_buffer("offset", torch.ones(3), persistent=False)
        self.sn = neuron.IFNode()

    def forward(self, x):
        return self.sn(self.fc(x) * self.gain + self.offset)


def computes_in_init() -> nn.Module:
    return ComputesInInit()


def test_arch_model_takes_the_checkpoint_tensors_without_a_second_copy(tmp_path):
    """The --arch model is built on meta and takes the loaded tensors: nothing left on meta,
    values equal, and the dtype is the model's own (a float64 checkpoint is cast)."""
    net = make_net()
    p = tmp_path / "sd.pt"
    torch.save({k: v.double() for k, v in net.state_dict().items()}, p)
    model = load_model(p, arch="tests.frontend.test_load:make_net").module
    tensors = [*model.parameters(), *model.buffers()]
    assert tensors and not any(t.is_meta for t in tensors)
    assert all(t.dtype == torch.float32 for t in model.parameters())
    for k, v in net.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)


def test_arch_model_that_cannot_be_built_on_meta_is_built_normally(tmp_path):
    torch.manual_seed(1)
    src = ComputesInInit()
    p = tmp_path / "sd.pt"
    torch.save(src.state_dict(), p)
    model = load_model(p, arch="tests.frontend.test_load:computes_in_init").module
    assert model.gain == 2.0 and torch.equal(model.offset, torch.ones(3)) and not model.offset.is_meta
    torch.testing.assert_close(model.fc.weight, src.fc.weight)


def test_trust_pickle_imports_the_project_of_the_working_directory(tmp_path, monkeypatch):
    """A whole pickled model needs its class: found from the working directory (like --arch),
    and when it cannot be imported the message says so instead of "corrupt"."""
    import sys

    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "userlib_net.py").write_text(
        "from torch import nn\nfrom spikingjelly.activation_based import neuron\n"
        "class UserNet(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(4, 3)\n        self.sn = neuron.IFNode()\n"
        "    def forward(self, x):\n        return self.sn(self.fc(x))\n")
    monkeypatch.syspath_prepend(str(proj))
    import userlib_net

    p = tmp_path / "whole.pt"
    torch.save(userlib_net.UserNet(), p)
    monkeypatch.delitem(sys.modules, "userlib_net")
    monkeypatch.setattr(sys, "path", [s for s in sys.path if s != str(proj)])

    monkeypatch.chdir(tmp_path)                      # not the project: the class is missing
    with pytest.raises(SnnCompileError, match="cannot be imported") as e:
        load_model(p, trust_pickle=True)
    assert "userlib_net" in e.value.message and "importable" in e.value.hint
    assert e.value.exit_code == EXIT_USAGE and "corrupt" not in e.value.hint

    monkeypatch.chdir(proj)                          # the project folder: it loads
    assert type(load_model(p, trust_pickle=True).module).__name__ == "UserNet"
