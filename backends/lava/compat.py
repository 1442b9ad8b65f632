"""Make lava-nc 0.10.0 importable on Python 3.11.

lava declares dataclass fields with mutable defaults (``x: ByteEncoder = ByteEncoder()``)
in ``lava/magma/compiler/var_model.py``; Python 3.11 rejects those at class creation.
An import hook rewrites that one module's source to ``field(default_factory=...)`` as it
is loaded. Nothing on disk changes. Lava forks its runtime processes, so the patched
module is inherited by every child.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
from types import ModuleType

TARGET = "lava.magma.compiler.var_model"
# `name: SomeEncoder = SomeEncoder()` → `name: SomeEncoder = field(default_factory=SomeEncoder)`
_MUTABLE_DEFAULT = re.compile(r"^(\s+\w+\s*:\s*(\w+)\s*=\s*)\2\(\)\s*$", re.MULTILINE)


def patch_source(source: str) -> str:
    """Return var_model.py's source with mutable dataclass defaults made factories."""
    patched = _MUTABLE_DEFAULT.sub(r"\1field(default_factory=\2)", source)
    if patched != source and not re.search(r"^from dataclasses import .*\bfield\b", patched, re.M):
        patched = "from dataclasses import field\n" + patched
        # `from __future__` must stay first: move it back above the inserted import.
        future = re.search(r"^from __future__ import .*$", patched, re.MULTILINE)
        if future:
            line = future.group(0)
            patched = line + "\n" + patched.replace(line + "\n", "", 1)
    return patched


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    def get_data(self, path: str) -> bytes:
        if path.endswith(".py"):
            return patch_source(super().get_data(path).decode("utf-8")).encode("utf-8")
        return super().get_data(path)

    def path_stats(self, path: str) -> dict:
        # No bytecode cache for the patched module: a stale .pyc would skip the patch.
        raise OSError("patched module is never cached")

    def set_data(self, path: str, data: bytes, *, _mode: int = 0o666) -> None:
        return None


class _VarModelFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path=None, target: ModuleType | None = None):
        if fullname != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None:
            return None
        spec.loader = _PatchingLoader(fullname, spec.origin)
        return spec


def needs_patch() -> bool:
    return sys.version_info >= (3, 11)


def install() -> None:
    """Install the import hook (idempotent). Call before the first ``import lava``."""
    if not needs_patch():
        return
    if any(isinstance(f, _VarModelFinder) for f in sys.meta_path):
        return
    if TARGET in sys.modules:
        return  # already imported (patched by someone else, or it would have failed)
    sys.meta_path.insert(0, _VarModelFinder())


# lava-dl's netx loader (`lava/lib/dl/netx/hdf5.py`) imports `lava.lib.dl.slayer.neuron.rf`
# for one helper that only resonate-and-fire layers use; importing slayer pulls torch's
# training stack and OpenCV (cv2), which lava-dl 0.6.0 cannot install on Python 3.11.
NETX = "lava.lib.dl.netx.hdf5"
_SLAYER = ("lava.lib.dl.slayer", "lava.lib.dl.slayer.neuron", "lava.lib.dl.slayer.neuron.rf")


def _rf_refused(*_args, **_kwargs):
    from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError

    raise SnnCompileError("this netx file has resonate-and-fire (RF) neurons, which need lava-dl's slayer "
                          "(torch training stack and OpenCV) to load",
                          "snncompile loads netx files made of CUBA (LIF) neurons only", EXIT_UNSUPPORTED)


def _stub_slayer() -> None:
    """Stand-ins for the three slayer modules netx's loader names; RF layers are refused."""
    if _SLAYER[0] in sys.modules:
        return  # the real slayer (or our stand-in) is already loaded
    modules = [ModuleType(name) for name in _SLAYER]
    modules[2].neuron_params = _rf_refused
    modules[0].neuron, modules[1].rf = modules[1], modules[2]
    for module in modules:
        module.__snncompile_stub__ = True
        sys.modules[module.__name__] = module


def import_netx() -> ModuleType:
    """Return lava-dl's ``lava.lib.dl.netx.hdf5`` (its ``Network`` loads a netx file).

    Installs the var_model fix, then stubs slayer so that CUBA files load without torch's
    training stack or OpenCV. Raises SnnCompileError naming the install command when
    lava-nc or lava-dl is missing.
    """
    from snncompile.errors import EXIT_USAGE, SnnCompileError

    if NETX in sys.modules:
        return sys.modules[NETX]
    install()
    try:
        found = importlib.util.find_spec("lava.lib.dl.netx") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise SnnCompileError("lava-dl (netx) is not installed; snncompile needs it to write and read netx files",
                              "run: snncompile setup lava (installs lava-nc and lava-dl 0.6.0)", EXIT_USAGE)
    _stub_slayer()
    return importlib.import_module(NETX)
