"""Resource limits checked at the boundary, before anything is allocated or opened.

The memory budget is what the machine says is available (``MemAvailable``), or
``SNNCOMPILE_MEMORY_BUDGET`` bytes when set (a cap for shared machines and tests). Any input
that declares a size (a NIR array, an ``.npy`` header, a checkpoint tensor, a ``--steps`` run)
is checked against it first, so a hostile file is refused by its header, not by the kernel's
OOM killer after GBs were touched.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

from snncompile.errors import EXIT_USAGE, SnnCompileError

_ENV = "SNNCOMPILE_MEMORY_BUDGET"
_FALLBACK = 4 << 30   # where /proc/meminfo is not available


def memory_budget() -> int:
    """Bytes one run may allocate: ``SNNCOMPILE_MEMORY_BUDGET`` or the available memory."""
    env = os.environ.get(_ENV)
    if env:
        try:
            value = int(float(env))
        except ValueError:
            raise SnnCompileError(f"{_ENV}={env!r} is not a number of bytes",
                                  f"set {_ENV} to e.g. 8e9, or unset it", EXIT_USAGE) from None
        if value > 0:
            return value
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return _FALLBACK


def human(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(nbytes) < 1000 or unit == "PB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} PB"


def check_memory(what: str, nbytes: float, hint: str, code: int = EXIT_USAGE) -> None:
    """Refuse ``what`` when it declares more bytes than the budget."""
    budget = memory_budget()
    if nbytes > budget:
        raise SnnCompileError(f"{what} needs {human(nbytes)} of memory; {human(budget)} is available",
                              f"{hint} (the budget is the available memory, or {_ENV} bytes)", code)


def check_regular_file(path: str | Path, what: str) -> Path:
    """Refuse, without opening it, a path that is not a regular file: opening a FIFO blocks
    until a writer appears, and a device or socket is no file to read."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return path   # the caller's own "not found" message names the fix
    except OSError as exc:
        raise SnnCompileError(f"cannot read {what} {path}: {exc.strerror}",
                              "check the path and its permissions", EXIT_USAGE) from None
    mode = st.st_mode
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return path
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
    raise SnnCompileError(f"{what} {path} is {kind}, not a regular file",
                          f"save the {what} to a file and pass that path", EXIT_USAGE)


def _npy_nbytes(fh: Any) -> int:
    """Bytes the ``.npy`` header in ``fh`` declares (shape × item size), without reading data."""
    import numpy as np
    from numpy.lib import format as npformat

    version = npformat.read_magic(fh)
    read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
    shape, _fortran, dtype = read(fh)
    return int(math.prod(shape)) * max(int(np.dtype(dtype).itemsize), 1)


def check_array_file(path: Path, what: str) -> None:
    """Refuse a ``.npy``/``.npz`` whose headers declare more than the memory budget. An ``.npz``
    is a zip: its members' uncompressed sizes and their ``.npy`` headers are both counted, so a
    zip bomb (a few KB inflating to GBs) is refused before one byte is inflated. A file whose
    header cannot be parsed is left to ``np.load``, whose error names the problem."""
    # float64 conversion downstream: at most 8 bytes per element and ~2 copies
    try:
        if path.suffix.lower() == ".npz":
            with zipfile.ZipFile(path) as zf:
                total = sum(info.file_size for info in zf.infolist())
                check_memory(f"{what} {path} (uncompressed)", total, "store fewer samples")
                for info in zf.infolist():
                    if info.filename.endswith(".npy"):
                        with zf.open(info) as fh:
                            total = max(total, _npy_nbytes(fh))
        else:
            with open(path, "rb") as fh:
                total = _npy_nbytes(fh)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return
    check_memory(f"{what} {path}", total * 2, "store fewer samples or pass --samples on a smaller file")
