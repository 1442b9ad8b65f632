"""Packaging: the wheel holds the package data, the extras keep a CPU torch, Lava's setup command.

The fresh-venv test (marked ``slow``, run with ``SNNCOMPILE_SLOW=1``) builds the wheel, installs
it with the torch pin and the ``[spikingjelly]`` extra into a new virtual environment from the
package index, and uses it as a new user would, from another folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from snncompile import deps
from snncompile.cli import main

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _tracked_sources(dest: Path) -> Path:
    """The checkout's tracked files copied to ``dest`` (a build must not write into the worktree)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in files.splitlines():
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _build_wheel(tmp_path: Path) -> Path:
    src = _tracked_sources(tmp_path / "src")
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(src)], check=True, capture_output=True, text=True)
    (wheel,) = out.glob("snncompile-*.whl")
    return wheel


def test_wheel_holds_the_package_data(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    files = subprocess.run(["git", "ls-files", "snncompile", "backends"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    assert files and set(files) <= names, sorted(set(files) - names)
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    from snncompile import __version__

    assert f"Version: {__version__}\n" in text
    assert "Requires-Dist: torch" in text


def _pin(requirements: list[str], name: str) -> str:
    (spec,) = [r for r in requirements if r.split("=")[0].split("<")[0].split(">")[0].strip() == name]
    return spec


def test_spikingjelly_extra_pins_the_builds_of_the_torch_pin():
    """spikingjelly requires torchvision/torchaudio unpinned; unpinned, pip takes releases built
    for a newer torch and replaces the CPU torch with a CUDA one. The pins must match ours."""
    extra = PYPROJECT["project"]["optional-dependencies"]["spikingjelly"]
    assert _pin(extra, "torchvision") == "torchvision==0.28.0"   # the release built for torch 2.13.0
    assert _pin(extra, "torchaudio").startswith("torchaudio==")
    makefile = (ROOT / "Makefile").read_text()
    assert f"install torch=={deps.TORCH_PIN}" in makefile
    torch_req = _pin(PYPROJECT["project"]["dependencies"], "torch")
    from packaging.specifiers import SpecifierSet

    assert deps.TORCH_PIN in SpecifierSet(torch_req.removeprefix("torch"))
    # lava-nc cannot be an extra (it declares Python < 3.11): `snncompile setup lava` installs it
    assert not any(r.startswith("lava-nc") for r in PYPROJECT["project"]["optional-dependencies"]["lava"])


def test_setup_lava_dry_run_prints_the_install_commands(capsys):
    assert main(["setup", "lava", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{sys.executable} -m pip install ") and "scikit-learn" in lines[0]
    assert "h5py" in lines[0]
    assert lines[1] == (f"{sys.executable} -m pip install --no-deps --ignore-requires-python "
                        f"lava-nc=={deps.LAVA_PIN} lava-dl=={deps.LAVA_DL_PIN}")
    assert lines[2].startswith("# then: delete the top-level tests/")


def test_setup_lava_runs_pip_and_reports_failure(monkeypatch, capsys):
    """Without --dry-run the commands run in order; a failing pip is one error line (exit 5)."""
    ran = []

    class Done:
        def __init__(self, code):
            self.returncode = code

    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: ran.append(cmd) or Done(1 if len(ran) == 2 else 0))
    assert main(["setup", "lava"]) == 5
    assert ran == deps.lava_setup_commands()
    assert "error: pip failed while installing lava" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SNNCOMPILE_SLOW"), reason="minutes: set SNNCOMPILE_SLOW=1 to run")
@pytest.mark.timeout(1800)
def test_fresh_venv_install_keeps_the_cpu_torch(tmp_path):
    wheel = _build_wheel(tmp_path)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    pip = [py, "-m", "pip", "install", "-q"]
    subprocess.run(pip + [f"torch=={deps.TORCH_PIN}"], check=True)
    subprocess.run(pip + [f"{wheel}[spikingjelly]"], check=True)
    installed = json.loads(subprocess.run([py, "-m", "pip", "list", "--format", "json"], check=True,
                                          capture_output=True, text=True).stdout)
    versions = {p["name"].lower(): p["version"] for p in installed}
    assert not [n for n in versions if n.startswith("nvidia-")]
    assert versions["torch"].split("+")[0] == deps.TORCH_PIN

    elsewhere = tmp_path / "user"
    elsewhere.mkdir()
    shutil.copy(ROOT / "models" / "digits_scnn.pt", elsewhere / "net.pt")
    exe = str(env_dir / "bin" / "snncompile")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SNNCOMPILE_VERIFY_IR")}

    def run(*args: str) -> str:
        done = subprocess.run(args, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout

    from snncompile import __version__

    assert __version__ in run(exe, "--version")
    assert "usage: snncompile" in run(exe, "--help")
    report = json.loads(run(exe, "energy", "net.pt", "--json"))
    assert report["energy"]["variants"]["ann"]["energy_pj"] > 0
    api = ("import numpy as np, torch, snncompile\n"
           "net = torch.nn.Sequential(torch.nn.Linear(16, 4))\n"
           "from spikingjelly.activation_based import neuron\n"
           "net.append(neuron.IFNode())\n"
           "r = snncompile.compile(net, 'energy', input=np.ones((3, 16), np.float32), steps=4)\n"
           "print(type(r).__name__, r.steps, r.energy.variants.snn.energy_pj > 0)\n")
    assert run(py, "-c", api).split() == ["Report", "4", "True"]
