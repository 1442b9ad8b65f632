"""Optional and heavy dependencies: what each is for, how to install it, whether it works here.

Three users: the CLI turns a missing import into one ``error:`` line naming the command
that installs it (:func:`missing`); ``snncompile doctor`` lists every dependency with its
version and whether it imports (:func:`doctor`); ``snncompile setup lava`` installs Lava on
Python 3.11, which lava-nc 0.10.0 refuses to declare (:func:`lava_setup_commands`).
Nothing here imports torch, Lava or spikingjelly at module level: ``--help`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from dataclasses import dataclass

from snncompile.errors import EXIT_USAGE, SnnCompileError

TORCH_PIN = "2.13.0"        # the torch the equivalence tests run on (requirements.txt, Makefile)
LAVA_PIN = "0.10.0"
LAVA_DL_PIN = "0.6.0"       # lava-dl (netx); declares Python <3.11, torch <2.4 and OpenCV, none needed for netx
H5PY = "h5py>=3.10,<3.17"  # netx files are HDF5
# lava-nc's own requirements, minus networkx<=2.8.7 (snncompile needs networkx 3; Lava runs with it).
LAVA_DEPS = ("asteval>=0.9.31,<0.10", "scikit-learn>=1.5,<2")


@dataclass(frozen=True)
class Dependency:
    """A package snncompile imports: the import name, the distribution, what needs it, the fix."""

    module: str          # top-level import name
    dist: str            # distribution name on the package index
    needed_for: str
    install: str         # the command that provides it
    required: bool = False


DEPENDENCIES: tuple[Dependency, ...] = (
    Dependency("torch", "torch", "tracing models and every simulation",
               f'pip install torch=={TORCH_PIN} (the CPU build; install it before snncompile)', required=True),
    Dependency("numpy", "numpy", "everything", 'pip install "numpy<2"', required=True),
    Dependency("rich", "rich", "the terminal tables", "pip install rich", required=True),
    Dependency("spikingjelly", "spikingjelly", "spikingjelly checkpoints",
               'pip install "snncompile[spikingjelly]"'),
    Dependency("lava", "lava-nc", "--target lava simulations (--simulate)", "snncompile setup lava"),
    Dependency("lava.lib.dl.netx", "lava-dl", "netx files (export --format netx, .net models)",
               "snncompile setup lava"),
    Dependency("matplotlib", "matplotlib", "--plot and sweep charts", 'pip install "snncompile[plot]"'),
    Dependency("ray", "ray", "--workers and `snncompile sweep`", 'pip install "snncompile[distributed]"'),
    Dependency("onnx", "onnx", "--target onnx", 'pip install "snncompile[onnx]"'),
    Dependency("onnxruntime", "onnxruntime", "--target onnx", 'pip install "snncompile[onnx]"'),
    Dependency("nir", "nir", ".nir models and --target nir", 'pip install "snncompile[nir]"'),
    Dependency("aedat", "aedat", "AEDAT4 event files (--input FILE.aedat4)", 'pip install "snncompile[events]"'),
)
_BY_MODULE = {d.module: d for d in DEPENDENCIES}


def _dependency_of(name: str) -> Dependency | None:
    """The dependency that provides module ``name``: a dotted entry (lava-dl's ``lava.lib.dl``
    inside lava-nc's ``lava`` namespace) wins over the top-level one."""
    for dep in DEPENDENCIES:
        root = dep.module.rsplit(".", 1)[0] if "." in dep.module else None
        if root and (name == root or name.startswith(root + ".")):
            return dep
    return _BY_MODULE.get(name.split(".")[0])


def missing(exc: ModuleNotFoundError) -> SnnCompileError | None:
    """The user-facing error for an import of a known dependency that failed, else None."""
    dep = _dependency_of(exc.name or "")
    if dep is None:
        return None
    return SnnCompileError(f"{dep.dist} is not installed; snncompile needs it for {dep.needed_for}",
                           f"run: {dep.install}", EXIT_USAGE)


def version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _import(module: str) -> None:
    """Import ``module`` the way snncompile does (Lava and netx need the 3.11 fixes first)."""
    if module.split(".")[0] != "lava":
        importlib.import_module(module)
        return
    from backends.lava import compat

    if module == compat.NETX.rsplit(".", 1)[0]:
        compat.import_netx()
        return
    compat.install()
    importlib.import_module("lava.magma.compiler.var_model")


def _usable(module: str) -> str:
    """'yes', or why the import fails (the first line of the error)."""
    try:
        _import(module)
    except Exception as exc:  # noqa: BLE001 - any failure means: not usable, say why
        return f"no: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    return "yes"


def doctor_row(module: str) -> dict[str, object]:
    """Installed version, whether it imports, what it is for and the fix, for one dependency."""
    dep = _BY_MODULE[module]
    ver = version(dep.dist)
    usable = _usable(dep.module) if ver is not None else "no: not installed"
    if dep.module == "torch" and usable == "yes":
        import torch

        cuda = getattr(torch.version, "cuda", None)
        usable = f"yes ({'CUDA ' + cuda if cuda else 'CPU'} build)"
    return {"package": dep.dist, "version": ver, "usable": usable, "needed_for": dep.needed_for,
            "required": dep.required, "install": None if usable.startswith("yes") else dep.install}


def doctor() -> list[dict[str, object]]:
    """One row per dependency (:func:`doctor_row`)."""
    return [doctor_row(dep.module) for dep in DEPENDENCIES]


def lava_setup_commands(python: str = sys.executable) -> list[list[str]]:
    """pip commands that make Lava and lava-dl's netx usable on Python 3.11: their needed
    dependencies as usual, then lava-nc and lava-dl without their declared requirements
    (Python < 3.11, networkx 2, torch < 2.4, OpenCV). The import fixes for 3.11
    (``backends.lava.compat``) are applied by snncompile at import time."""
    pip = [python, "-m", "pip", "install"]
    return [pip + list(LAVA_DEPS) + [H5PY],
            pip + ["--no-deps", "--ignore-requires-python", f"lava-nc=={LAVA_PIN}", f"lava-dl=={LAVA_DL_PIN}"]]


def drop_lava_dl_tests() -> int:
    """Delete the top-level ``tests`` package lava-dl's wheel installs (it would shadow any
    project's ``tests``): only the files lava-dl's RECORD lists. Returns how many went."""
    try:
        files = importlib.metadata.distribution("lava-dl").files or []
    except importlib.metadata.PackageNotFoundError:
        return 0
    gone, folders = 0, set()
    for file in files:
        if file.parts[0] == "tests":
            path = file.locate()
            folders.update(path.parents[: len(file.parts) - 1])
            if path.is_file():
                path.unlink()
                gone += 1
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()   # only folders the files above left empty
    return gone
