"""Imports flow one way: frontend → ir → passes → lower/netlist → consumers → api/cli.

A module may import only from its own stage or an earlier one (``ir``, ``errors`` and
``fsutil`` are the shared ground every stage stands on). Checked on the source (AST), so
a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RANK = {
    "snncompile.errors": 0, "snncompile.fsutil": 0, "snncompile.ir": 0, "snncompile.inputs": 0,
    "snncompile.events": 0,
    "snncompile.memory": 0, "snncompile.limits": 0, "snncompile.schema": 0, "snncompile.targets": 0,
    "snncompile.threads": 0,
    "snncompile.frontend": 1,
    "snncompile.passes": 2,
    "snncompile.netlist": 3, "snncompile.lower": 3,
    "snncompile.fixedpoint": 4,
    "snncompile.sim": 5, "snncompile.parallel": 5, "snncompile.energy": 5, "snncompile.mapping": 5, "backends": 5,
    "snncompile.compare": 6, "snncompile.report": 6, "snncompile.render": 6, "snncompile.stages": 6,
    "snncompile.spikeplot": 6,
    "snncompile.api": 7, "snncompile.apicheck": 7, "snncompile.deps": 7, "snncompile.cli": 7, "snncompile": 7, "snncompile.__main__": 7,
}


def stage(module: str) -> str:
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in RANK:
            return ".".join(parts[:k])
    raise KeyError(module)


def modules() -> list[tuple[str, Path]]:
    out = []
    for top in ("snncompile", "backends"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out.append((".".join(parts), path))
    return out


def imported(path: Path, module: str) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative import: resolve against the package
                pkg = module.split(".")[: -node.level] if not path.name == "__init__.py" else \
                    module.split(".")[: len(module.split(".")) - node.level + 1]
                base = ".".join(pkg + [node.module])
            names += [f"{base}.{a.name}" for a in node.names] if base in ("snncompile", "backends") else [base]
    return [n for n in names if n.split(".")[0] in ("snncompile", "backends")]


def test_every_module_has_a_stage():
    for module, _ in modules():
        stage(module)


def test_no_import_goes_back_up_the_pipeline():
    wrong = []
    for module, path in modules():
        mine = RANK[stage(module)]
        for name in imported(path, module):
            theirs = RANK[stage(name)]
            if theirs > mine:
                wrong.append(f"{module} (stage {mine}) imports {name} (stage {theirs})")
    assert not wrong, "\n".join(wrong)


def test_passes_never_lower():
    for module, path in modules():
        if stage(module) == "snncompile.passes":
            assert not [n for n in imported(path, module) if RANK[stage(n)] >= 3], module
