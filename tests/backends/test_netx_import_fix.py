"""lava-dl's netx loader imports on Python 3.11 through backends.lava.compat.import_netx."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path, PurePosixPath

import pytest

from backends.lava import compat
from snncompile import deps
from snncompile.errors import SnnCompileError

ROOT = Path(__file__).resolve().parents[2]


def test_import_netx_gives_the_real_loader_without_opencv():
    hdf5 = compat.import_netx()
    assert hdf5.__name__ == "lava.lib.dl.netx.hdf5"
    assert hdf5.Network.__module__ == "lava.lib.dl.netx.hdf5"
    assert Path(hdf5.__file__).parts[-5:] == ("lava", "lib", "dl", "netx", "hdf5.py")
    assert "cv2" not in sys.modules
    assert compat.import_netx() is hdf5


def test_resonate_and_fire_layers_are_refused_by_name():
    compat.import_netx()
    rf = sys.modules["lava.lib.dl.slayer.neuron.rf"]
    if not getattr(rf, "__snncompile_stub__", False):
        pytest.skip("the real slayer is loaded here")
    with pytest.raises(SnnCompileError) as info:
        rf.neuron_params({"type": "RF"})
    assert "resonate-and-fire" in info.value.message and "CUBA" in info.value.hint


def test_missing_lava_dl_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.delitem(sys.modules, compat.NETX, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("lava.lib.dl") else real(name, *a))
    with pytest.raises(SnnCompileError) as info:
        compat.import_netx()
    assert "lava-dl" in info.value.message and info.value.hint.startswith("run: snncompile setup lava")
    assert info.value.exit_code == 2


def test_a_missing_lava_lib_dl_module_is_blamed_on_lava_dl_not_lava_nc():
    assert "lava-dl is not installed" in deps.missing(ModuleNotFoundError(name="lava.lib.dl")).message
    assert "lava-nc is not installed" in deps.missing(ModuleNotFoundError(name="lava.magma")).message
    row = deps.doctor_row("lava.lib.dl.netx")
    assert row["package"] == "lava-dl" and row["usable"] == "yes"


def test_lava_dl_pin_matches_the_nodeps_requirements():
    assert f"lava-dl=={deps.LAVA_DL_PIN}" in (ROOT / "requirements-nodeps.txt").read_text().split()


def test_drop_lava_dl_tests_deletes_only_the_files_its_record_lists(monkeypatch, tmp_path):
    (tmp_path / "tests" / "sub").mkdir(parents=True)
    (tmp_path / "tests" / "sub" / "a.py").write_text("")
    (tmp_path / "tests" / "mine.py").write_text("")       # not in the RECORD: kept
    (tmp_path / "lava").mkdir()
    (tmp_path / "lava" / "x.py").write_text("")

    class File(PurePosixPath):
        def locate(self):
            return tmp_path / self

    class Dist:
        files = [File("tests/sub/a.py"), File("lava/x.py")]

    monkeypatch.setattr(deps.importlib.metadata, "distribution", lambda name: Dist())
    assert deps.drop_lava_dl_tests() == 1
    assert not (tmp_path / "tests" / "sub").exists()
    assert (tmp_path / "tests" / "mine.py").exists() and (tmp_path / "lava" / "x.py").exists()
