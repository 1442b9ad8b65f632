"""CLI manners: --version, --help for every verb without importing torch, `doctor`, and a
missing dependency as one error line that names the command installing it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from snncompile import __version__
from snncompile.cli import VERBS, main

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "digits_scnn.pt"
HEAVY = ("torch", "lava", "spikingjelly", "matplotlib", "ray", "onnx", "scipy", "networkx")

# Runs the CLI with some top-level packages made unimportable, as if not installed.
BLOCKED = """
import importlib.abc, sys
blocked = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Blocker())
from snncompile.cli import main
code = main(sys.argv[2:])
sys.stdout.write("\\nIMPORTED " + ",".join(sorted(m for m in sys.modules if "." not in m)) + "\\n")
raise SystemExit(code)
"""


def _run(blocked: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKED, blocked, *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"snncompile {__version__} (Python {sys.version.split()[0]})"


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_help(capsys, verb):
    with pytest.raises(SystemExit) as info:
        main([verb, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: snncompile {verb}" if verb != "compile" else "usage: snncompile ")
    assert len(out.splitlines()) > 3


def test_help_and_version_import_no_heavy_package():
    """--help is fast because nothing heavy loads: with torch & co. unimportable it still works."""
    for args in (["--help"], ["export", "--help"], ["--version"]):
        done = _run(",".join(HEAVY), *args)
        assert done.returncode == 0, done.stderr
        assert "usage: snncompile" in done.stdout or __version__ in done.stdout
        assert done.stderr == ""


@pytest.mark.parametrize("blocked,args,needle", [
    ("torch", ["energy", MODEL], "error: torch is not installed; snncompile needs it for tracing models and "
                                 "every simulation\n  hint: run: pip install torch==2.13.0"),
    ("spikingjelly", ["energy", MODEL], 'is a spikingjelly model, but spikingjelly is not installed\n'
                                        '  hint: run: pip install "snncompile[spikingjelly]"'),
    ("matplotlib", ["energy", MODEL, "--plot", "{tmp}/e.png"], 'error: matplotlib is not installed; '
                                                              'snncompile needs it for --plot and sweep charts\n'
                                                              '  hint: run: pip install "snncompile[plot]"'),
])
def test_a_missing_dependency_is_one_error_line(tmp_path, blocked, args, needle):
    done = _run(blocked, *[str(a).replace("{tmp}", str(tmp_path)) for a in args])
    assert done.returncode == 2
    assert needle in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("error:") == 1
    assert not (tmp_path / "e.png").exists()


def test_missing_lava_names_the_setup_command(monkeypatch):
    """Lava runs in a worker process; its absence is found before the worker starts."""
    import importlib.util

    from backends.lava import backend

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lava" else real(name, *a))
    with pytest.raises(ModuleNotFoundError) as info:
        backend._require_lava()
    from snncompile.deps import missing

    err = missing(info.value)
    assert err.message == "lava-nc is not installed; snncompile needs it for --target lava simulations (--simulate)"
    assert err.hint == "run: snncompile setup lava"


def test_doctor_lists_every_dependency(capsys):
    assert main(["doctor", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {r["package"]: r for r in doc["dependencies"]}
    assert {"torch", "numpy", "spikingjelly", "lava-nc", "matplotlib", "ray", "onnx", "nir"} <= set(rows)
    import torch

    assert rows["torch"]["version"] == torch.__version__ and rows["torch"]["usable"].startswith("yes")
    assert doc["ready"] is True and doc["version"].startswith(f"snncompile {__version__}")


def test_doctor_says_what_is_missing_and_how():
    done = _run("spikingjelly,ray", "doctor", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["package"]: r for r in json.loads(done.stdout.split("\nIMPORTED")[0])["dependencies"]}
    assert rows["spikingjelly"]["usable"].startswith("no: ModuleNotFoundError")
    assert rows["spikingjelly"]["install"] == 'pip install "snncompile[spikingjelly]"'
    assert rows["ray"]["install"] == 'pip install "snncompile[distributed]"'
