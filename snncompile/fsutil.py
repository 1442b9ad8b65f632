"""File output: atomic single files, and runs whose outputs appear together or not at all."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from snncompile.errors import EXIT_USAGE, SnnCompileError

Writer = Callable[[IO[bytes]], None]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, write: Writer) -> Path:
    """Call ``write(fh)`` on a temp file, then rename it to ``path`` (mode 0666 & ~umask,
    as a plain ``open`` would give). A failure leaves no file behind."""
    path = Path(path)
    check_destination(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_destination(path: str | Path, what: str = "output") -> Path:
    """Refuse, before any work, a file destination that cannot be written: a folder in its
    place, or a file where one of its parent folders should be."""
    path = Path(path)
    if path.is_dir():
        raise SnnCompileError(f"{what} {path} is a folder, not a file",
                              f"remove or rename the folder {path}, or choose another output path", EXIT_USAGE)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SnnCompileError(f"cannot write {what} {path}: {parent} is a file, not a folder",
                                      "choose an output path whose folders are folders", EXIT_USAGE)
            if not os.access(parent, os.W_OK | os.X_OK):
                raise SnnCompileError(f"cannot write {what} {path}: no write permission in {parent}",
                                      "choose a folder you can write to", EXIT_USAGE)
            break
    return path


def check_folder(path: str | Path, what: str = "output folder") -> Path:
    """A folder destination: it may exist (as a folder) or be created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SnnCompileError(f"{what} {path} is a file", "pass a folder path to -o (it is created if missing)",
                              EXIT_USAGE)
    check_destination(path / "_", what)
    return path


class StagedOutputs:
    """Files of one run, written to a staging folder beside each destination and moved
    into place by :meth:`commit` only, so a failed run leaves nothing behind."""

    def __init__(self) -> None:
        self._items: list[tuple[Path, Path]] = []
        self._staging: dict[Path, Path] = {}

    def _anchor(self, path: Path) -> Path:
        for parent in path.parents:
            if parent.is_dir():
                return parent
        return Path.cwd()

    def write(self, path: str | Path, write: Writer) -> Path:
        path = check_destination(path)
        anchor = self._anchor(path)
        if anchor not in self._staging:
            self._staging[anchor] = Path(tempfile.mkdtemp(prefix=".snncompile-staging-", dir=anchor))
        tmp = self._staging[anchor] / f"{len(self._items)}{path.suffix}"
        with open(tmp, "wb") as fh:
            write(fh)
        os.chmod(tmp, 0o666 & ~_umask())
        self._items.append((path, tmp))
        return path

    def commit(self) -> None:
        done: list[tuple[Path, Path]] = []
        created: list[Path] = []
        try:
            for path, tmp in self._items:
                missing = [p for p in reversed(path.parents) if not p.exists()]
                path.parent.mkdir(parents=True, exist_ok=True)
                created += missing
                os.replace(tmp, path)
                done.append((path, tmp))
        except OSError as exc:
            for path, tmp in reversed(done):  # put the run back the way it was: all or nothing
                os.replace(path, tmp)
            for folder in reversed(created):
                shutil.rmtree(folder, ignore_errors=True)
            raise SnnCompileError(f"cannot write {exc.filename}: {exc.strerror}",
                                  "check the output paths (-o, --plot) and free disk space", EXIT_USAGE) from None
        finally:
            self.discard()

    def discard(self) -> None:
        for folder in self._staging.values():
            shutil.rmtree(folder, ignore_errors=True)
        self._staging.clear()


@contextmanager
def staged_outputs() -> Iterator[StagedOutputs]:
    """Outputs written inside the block appear only if the block finishes without error."""
    out = StagedOutputs()
    try:
        yield out
    except BaseException:
        out.discard()
        raise
    out.commit()
