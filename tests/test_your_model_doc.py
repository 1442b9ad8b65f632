"""docs/your-model.md runs as written, in an empty folder, in order: a ``python`` block whose
first line is ``# NAME.py`` is that file's content, any other ``python`` block is executed,
every line of an ``sh`` block is a command (``snncompile …`` run in-process; ``# exits N``:
its exit code, else 0), and a ``text`` block after a command holds lines its output prints."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from snncompile.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "your-model.md"
BLOCK = re.compile(r"```(python|sh|text)\n(.*?)```", flags=re.S)


def blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(PAGE.read_text())


def test_the_guide_covers_the_path_and_is_linked():
    text = PAGE.read_text()
    commands = [ln for kind, body in blocks() if kind == "sh" for ln in body.splitlines() if ln.strip()]
    assert any(c.startswith("snncompile inspect") for c in commands)
    assert any("--simulate" in c and "--check" in c for c in commands)
    assert sum("# exits" in c for c in commands) >= 3, "the common refusals are shown, with their messages"
    assert "state_dict" in text and "--trust-pickle" in text
    assert "docs/your-model.md" in (ROOT / "README.md").read_text()


@pytest.mark.lava
def test_every_block_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []
    last: tuple[str, str] | None = None
    try:
        for index, (kind, body) in enumerate(blocks()):
            where = f"docs/your-model.md block {index}"
            first = body.splitlines()[0]
            if kind == "python" and re.fullmatch(r"# \w+\.py", first):
                (tmp_path / first[2:]).write_text(body)
                written.append(first[2:-3])
            elif kind == "python":
                exec(compile(body, where, "exec"), {"__name__": "__doc_example__"})
            elif kind == "sh":
                for line in filter(str.strip, body.splitlines()):
                    last = _run(line, capsys, where)
            else:
                assert last is not None, f"{where}: output shown before any command"
                for expected in filter(str.strip, body.splitlines()):
                    assert expected in last[0] + last[1], f"{where}: {expected!r} not printed by the command"
    finally:
        for name in written:
            sys.modules.pop(name, None)


def _run(line: str, capsys: pytest.CaptureFixture, where: str) -> tuple[str, str]:
    command, _, comment = line.partition("#")
    expected = int(m[1]) if (m := re.search(r"exits (\d+)", comment)) else 0
    argv = shlex.split(command)
    assert argv[0] == "snncompile", f"{where}: only snncompile commands are run: {line}"
    capsys.readouterr()
    code = main(argv[1:])
    out, err = capsys.readouterr()
    assert code == expected, f"{where}: `{command.strip()}` exited {code}, not {expected}\n{err}"
    return out, err
