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
    Dependency("matplotlib", "matplotlib", "--plot and sweep charts", 'pip install "snncompile[plot]"'),
    Dependency("ray", "ray", "--workers and `snncompile sweep`", 'pip install "snncompile[distributed]"'),
    Dependency("onnx", "onnx", "--target onnx", 'pip install "snncompile[onnx]"'),
    Dependency("onnxruntime", "onnxruntime", "--target onnx", 'pip install "snncompile[onnx]"'),
    Dependency("nir", "nir", ".nir models and --target nir", 'pip install "snncompile[nir]"'),
    Dependency("aedat", "aedat", "AEDAT4 event files (--input FILE.aedat4)", 'pip install "snncompile[events]"'),
)
_BY_MODULE = {d.module: d for d in DEPENDENCIES}


def missing(exc: ModuleNotFoundError) -> SnnCompileError | None:
    """The user-facing error for an import of a known dependency that failed, else None."""
    top = (exc.name or "").split(".")[0]
    dep = _BY_MODULE.get(top)
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


def _usable(module: str) -> str:
    """'yes', or why the import fails (the first line of the error)."""
    if module == "lava":  # on Python 3.11 Lava imports only with our fix installed first
        from backends.lava import compat

        compat.install()
        module = "lava.magma.compiler.var_model"
    try:
        importlib.import_module(module)
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
    """pip commands that make Lava usable on Python 3.11: its dependencies as usual, then
    lava-nc itself without its (Python < 3.11, networkx 2) requirements. The import fix
    for 3.11 (``backends.lava.compat``) is applied by snncompile at import time."""
    pip = [python, "-m", "pip", "install"]
    return [pip + list(LAVA_DEPS),
            pip + ["--no-deps", "--ignore-requires-python", f"lava-nc=={LAVA_PIN}"]]
