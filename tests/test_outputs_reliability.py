"""Outputs under failure (issue #27 item 3–4): a failed run never destroys what was there, full
disks / long names / read-only folders end in one clear error, a closed or full stdout ends
quietly with a non-zero code, and `[...]` in user strings is shown verbatim, not as markup."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from snncompile import fsutil
from snncompile.cli import main
from snncompile.errors import EXIT_PIPE, EXIT_USAGE, SnnCompileError

ROOT = Path(__file__).resolve().parents[1]
M = str(ROOT / "models" / "digits_scnn.pt")


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _fail_replace_for(name: str, code: int, monkeypatch) -> None:
    """The first move of a file onto ``name`` fails (as a full disk would); later ones work."""
    real, failed = os.replace, []

    def replace(src, dst, *a, **kw):
        if Path(dst).name == name and Path(src).parent.name.startswith(".snncompile-staging-") \
                and not Path(src).name.endswith(".old") and not failed:
            failed.append(dst)
            raise OSError(code, os.strerror(code), str(dst))
        return real(src, dst, *a, **kw)
    monkeypatch.setattr(os, "replace", replace)


def test_failed_run_keeps_previous_plot_and_report(tmp_path, monkeypatch, capsys):
    """The known data loss: the plot is moved into place, then the report fails (full disk);
    the previous run's plot and report must come back byte for byte."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "e.png").write_bytes(b"previous plot")
    (tmp_path / "out" / "report.json").write_bytes(b"previous report")
    before = _files(tmp_path)
    _fail_replace_for("report.json", errno.ENOSPC, monkeypatch)
    code = main([M, "--target", "energy", "--plot", "e.png", "-o", "out", "--json"])
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE, err
    doc = json.loads(out.strip().splitlines()[-1])
    assert "disk space" in doc["hint"] and "Traceback" not in err
    assert _files(tmp_path) == before
    assert not list(tmp_path.rglob(".snncompile-staging-*")), "staging folders left behind"


def test_staged_write_full_disk_is_one_error(tmp_path):
    def full(fh):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    staged = fsutil.StagedOutputs()
    with pytest.raises(SnnCompileError) as exc:
        staged.write(tmp_path / "a.bin", full)
    staged.discard()
    assert exc.value.exit_code == EXIT_USAGE and "disk space" in exc.value.hint
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_full_disk_keeps_old_file(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def half(fh):
        fh.write(b"new, partly")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(SnnCompileError):
        fsutil.write_atomic(target, half)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


@pytest.mark.parametrize("arg", ["-o", "--plot"])
def test_name_longer_than_file_system_allows(arg, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    name = "n" * 300 + (".png" if arg == "--plot" else "")
    code = main([M, "--target", "energy", arg, name, "--json"])
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE and "Traceback" not in err
    doc = json.loads(out.strip().splitlines()[-1])
    assert "shorter" in doc["hint"], doc
    assert list(tmp_path.iterdir()) == []


def test_read_only_folder(tmp_path, monkeypatch):
    """A read-only file system (EROFS at write time; root ignores mode bits, so simulated)."""
    def mkdtemp(*a, **kw):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), kw.get("dir"))
    monkeypatch.setattr(fsutil.tempfile, "mkdtemp", mkdtemp)
    staged = fsutil.StagedOutputs()
    with pytest.raises(SnnCompileError) as exc:
        staged.write(tmp_path / "e.png", lambda fh: fh.write(b"x"))
    assert "read-only" in exc.value.hint and exc.value.exit_code == EXIT_USAGE
    assert list(tmp_path.iterdir()) == []


def _cli(args: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "snncompile", *args], env=env, capture_output=False,
                          timeout=120, **kw)


def test_stdout_closed_or_full_exits_quietly(tmp_path):
    """`>&-` (closed), /dev/full (ENOSPC): no traceback, the documented non-zero code."""
    err = tmp_path / "err.txt"
    with open(err, "wb") as e:
        closed = _cli([M, "--json"], stdout=subprocess.DEVNULL, stderr=e,
                      preexec_fn=lambda: os.close(1))
    assert closed.returncode == EXIT_PIPE and "Traceback" not in err.read_text()
    with open("/dev/full", "wb") as full, open(err, "wb") as e:
        res = _cli([M, "--json"], stdout=full, stderr=e)
    text = err.read_text()
    assert res.returncode == EXIT_PIPE and "Traceback" not in text and "No space left" in text


def test_markup_in_paths_is_shown_verbatim(tmp_path, monkeypatch, capsys):
    """Brackets in a path are text: not eaten as a style tag, no MarkupError."""
    monkeypatch.chdir(tmp_path)
    code = main(["[bold]m[/]odel[/red].pt"])
    _, err = capsys.readouterr()
    assert code == EXIT_USAGE
    assert "[bold]m[/]odel[/red].pt" in err and "MarkupError" not in err


def test_markup_in_output_path_is_rendered_verbatim(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main([M, "--target", "energy", "--plot", "[red]e[/].png"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "[red]e[/].png" in out and (tmp_path / "[red]e[/].png").is_file()
