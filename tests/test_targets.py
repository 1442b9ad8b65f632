"""One declaration per target (snncompile/targets.py): the CLI, the API, the backends and
the README read it, and the CLI and the API share one set of defaults."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

import backends  # noqa: F401  (registers the targets' code)
from snncompile import targets
from snncompile.api import Options, defaults
from snncompile.cli import compile_parser, sweep_parser
from snncompile.errors import SnnCompileError
from snncompile.netlist import target as registry

ROOT = Path(__file__).resolve().parents[1]
CLI_TO_API = {"simulate": "simulate_on_target", "check": "verify_ir"}   # flag dest → Options field
CLI_ONLY = {"model", "json", "debug", "verbose", "no_passes", "version"}  # read by the CLI itself
API_ONLY = {"progress"}                                                 # a callback, no flag


def _actions():
    return {a.dest: a for a in compile_parser()._actions if a.dest != "help"}


def test_cli_and_api_share_their_defaults():
    api = defaults()
    for dest, action in _actions().items():
        if dest in CLI_ONLY:
            continue
        field = CLI_TO_API.get(dest, dest)
        assert field in api, f"--{dest} has no api.Options field"
        assert action.default == api[field], f"--{dest}: CLI default {action.default!r}, API {api[field]!r}"


def test_sweep_flags_share_the_api_defaults():
    api = defaults()
    shared = {a.dest: a.default for a in sweep_parser()._actions if a.dest in api}
    shared.pop("workers")   # a sweep always runs on Ray: its default is the core count, not "no shards"
    assert shared.keys() >= {"ray_address", "ray_connect_timeout"}
    assert shared == {k: api[k] for k in shared}


def test_every_api_option_has_a_flag():
    flags = {CLI_TO_API.get(d, d) for d in _actions()}
    assert {f.name for f in fields(Options)} - flags == API_ONLY


def test_cli_choices_come_from_the_declarations():
    acts = _actions()
    assert acts["target"].choices == list(targets.TARGETS)
    assert acts["target"].default == targets.DEFAULT_TARGET
    assert tuple(acts["emit"].choices) == targets.cli_emissions() == targets.TARGETS["lava"].emissions


def test_backends_and_registry_follow_the_declarations():
    lowering = {n for n, t in targets.TARGETS.items() if t.lowers}
    assert set(registry.TARGETS) == lowering
    for name in ("lava", "nir"):
        assert registry.get(name).emissions == targets.TARGETS[name].emissions
    pytest.importorskip("onnx")
    assert registry.get("onnx").emissions == targets.TARGETS["onnx"].emissions


def test_declarations_are_consistent():
    for t in targets.TARGETS.values():
        assert set(t.options) <= set(targets.OPTIONS), t.name
        assert not (t.simulate or t.ray_shards or t.emissions or t.artifacts) or t.lowers, t.name
        assert not t.ray_shards or t.simulate, t.name
        assert ("fixed_point" in t.options) == t.fixed_point, t.name


def test_the_declarations_import_nothing_heavy():
    tree = ast.parse((ROOT / "snncompile" / "targets.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "dataclasses"}
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('t', {str(ROOT / 'snncompile' / 'targets.py')!r})\n"
            "m = sys.modules['t'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "assert m.TARGETS and not {'torch', 'lava', 'onnx', 'numpy'} & set(sys.modules), sorted(sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readme_tables_are_the_declarations():
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index("<!-- targets table -->\n"), readme.index("<!-- /targets table -->")
    assert readme[start + len("<!-- targets table -->\n"):end].strip() == targets.table_markdown()
    assert f"| `--target` | {targets.target_help(markdown=True)} |" in readme
    assert f"[--target {targets.usage_choices()}]" in readme
    assert f"(default {defaults()['timeout']:g} s)" in readme


@pytest.mark.parametrize("kw, words", [
    ({"target": "nir"}, "--target nir writes model.nir, but no output folder"),
    ({"target": "onnx"}, "writes model.onnx and model_ann.onnx"),
    ({"target": "onnx", "outdir": "out", "emit": "fused"}, "--emit chooses how the lava target"),
    ({"target": "lava", "emit": "float32"}, "unknown Lava emission 'float32'"),
    ({"target": "energy", "fixed_point": True}, "need the lava or netx target"),
    ({"target": "gpu"}, "unknown target 'gpu'"),
])
def test_api_validation_reads_the_declarations(tmp_path, monkeypatch, kw, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SnnCompileError, match=words):
        Options(**kw).check()


def test_a_new_declaration_reaches_the_api(tmp_path, monkeypatch):
    spec = targets.TargetSpec("chipx", "ChipX", "a test chip", emissions=("a", "b"), artifacts=("x.bin",),
                              lowers=True, options=("emit",))
    monkeypatch.setitem(targets.TARGETS, "chipx", spec)
    with pytest.raises(SnnCompileError, match="writes x.bin"):
        Options(target="chipx").check()
    with pytest.raises(SnnCompileError, match="unknown ChipX emission 'c'"):
        Options(target="chipx", emit="c", outdir=tmp_path / "o").check()
    Options(target="chipx", emit="b", outdir=tmp_path / "o").check()
    assert "chipx" in [a for a in _actions()["target"].choices]


def test_sweep_cells_default_like_the_cli(tmp_path):
    from snncompile.sweep import load_spec

    (tmp_path / "m.pt").write_bytes(b"")
    (tmp_path / "s.toml").write_text('models = ["m.pt"]\ninput = "x.npz"\nsimulate = false\n')
    (cell,) = load_spec(tmp_path / "s.toml").cells
    assert cell.timeout == defaults()["timeout"] and cell.cost_models == [defaults()["energy_model"]]
