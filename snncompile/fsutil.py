"""File output: atomic single files, and runs whose outputs appear together or not at all."""

from __future__ import annotations

import errno
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
    with os_errors(path):
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


def names_folder(path: str | Path) -> bool:
    """A path written with a trailing separator names a folder (``Path`` drops the separator:
    ask before converting)."""
    return isinstance(path, str) and path.endswith(("/", os.sep))


def check_destination(path: str | Path, what: str = "output") -> Path:
    """Refuse, before any work, a file destination that cannot be written: a folder in its
    place (or a name ending in a separator, which names one), something that is not a regular
    file (a FIFO, socket or device: writing would block or replace it), or a file where one of
    its parent folders should be."""
    if names_folder(path):
        raise SnnCompileError(f"{what} {path} ends with '/': it names a folder, not a file",
                              f"give a file name (e.g. {path.rstrip('/' + os.sep) or 'out'}), or -o DIR for a "
                              "folder of outputs", EXIT_USAGE)
    path = Path(path)
    with os_errors(path):   # a name longer than the file system allows fails even a stat
        return _check_destination(path, what)


def _check_destination(path: Path, what: str) -> Path:
    if path.is_dir():
        raise SnnCompileError(f"{what} {path} is a folder, not a file",
                              f"remove or rename the folder {path}, or choose another output path", EXIT_USAGE)
    if path.exists() and not path.is_file():
        raise SnnCompileError(f"{what} {path} exists and is not a regular file (a FIFO, socket or device)",
                              "choose another output path", EXIT_USAGE)
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
    with os_errors(path):
        exists = path.exists()
    if exists and not path.is_dir():
        raise SnnCompileError(f"{what} {path} is a file", "pass a folder path to -o (it is created if missing)",
                              EXIT_USAGE)
    check_destination(path / "_", what)
    return path


def _os_error(exc: OSError, path: Path) -> SnnCompileError:
    """One clear message for a failed write: full disk, name too long, read-only, ..."""
    hints = {errno.ENOSPC: "free disk space, or write to another disk",
             errno.EDQUOT: "free disk space (your quota is full), or write to another disk",
             errno.ENAMETOOLONG: "choose a shorter file name (the file system limits each name to "
                                 "255 bytes)",
             errno.EROFS: "the file system is read-only: choose another output folder",
             errno.EACCES: "choose a folder you can write to", errno.EPERM: "choose a folder you can write to"}
    return SnnCompileError(f"cannot write {path}: {exc.strerror or exc}",
                           hints.get(exc.errno or 0, "check the output paths (-o, --plot) and free disk space"),
                           EXIT_USAGE)


@contextmanager
def os_errors(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` into one :class:`SnnCompileError`."""
    try:
        yield
    except OSError as exc:
        raise _os_error(exc, path) from None


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
        with os_errors(path):
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
        """Move every staged file into place. A file already at a destination is first moved
        aside into the staging folder, so a failure part-way puts every earlier file back as
        it was (a rerun that fails never deletes a previous run's plot or report)."""
        done: list[tuple[Path, Path, Path | None]] = []
        created: list[Path] = []
        try:
            for path, tmp in self._items:
                missing = [p for p in reversed(path.parents) if not p.exists()]
                path.parent.mkdir(parents=True, exist_ok=True)
                created += missing
                old = None
                if path.exists():
                    old = tmp.with_name(tmp.name + ".old")
                    os.replace(path, old)
                done.append((path, tmp, old))
                os.replace(tmp, path)
        except OSError as exc:
            self._roll_back(done, created)
            raise _os_error(exc, Path(exc.filename or "")) from None
        finally:
            self.discard()

    @staticmethod
    def _roll_back(done: list[tuple[Path, Path, Path | None]], created: list[Path]) -> None:
        for path, tmp, old in reversed(done):   # put the run back the way it was: all or nothing
            if path.exists() and not tmp.exists():
                os.replace(path, tmp)
            if old is not None and old.exists():
                os.replace(old, path)
        for folder in reversed(created):
            shutil.rmtree(folder, ignore_errors=True)

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
