"""Cost models: energy per operation, loaded from TOML files that carry their sources."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from snncompile.errors import EXIT_USAGE, SnnCompileError

MODELS_DIR = Path(__file__).parent / "models"


@dataclass(frozen=True)
class CostModel:
    name: str
    source: str
    units: str
    ops: dict[str, float]
    description: str = ""
    unverified: tuple[str, ...] = field(default_factory=tuple)

    def pj(self, op: str) -> float:
        if op not in self.ops:
            raise SnnCompileError(f"cost model {self.name!r} has no energy for operation {op!r}",
                                  f"add `{op} = <pJ>` under [ops] in its TOML file", EXIT_USAGE)
        return float(self.ops[op])


def available() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob("*.toml"))


def load_cost_model(name_or_path: str) -> CostModel:
    path = Path(name_or_path)
    if not path.suffix:
        path = MODELS_DIR / f"{name_or_path}.toml"
    if not path.exists():
        raise SnnCompileError(f"unknown energy model {name_or_path!r}",
                              f"use one of {', '.join(available())} or a TOML file path", EXIT_USAGE)
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SnnCompileError(f"cannot parse energy model {path}: {exc}",
                              "fix the TOML syntax", EXIT_USAGE) from None
    missing = [k for k in ("name", "source", "units", "ops") if k not in data]
    if missing:
        raise SnnCompileError(f"energy model {path} lacks {', '.join(missing)}",
                              "every cost model needs name, source, units and an [ops] table",
                              EXIT_USAGE)
    if data["units"] != "pJ":
        raise SnnCompileError(f"energy model {path} uses units {data['units']!r}",
                              "give energies in pJ", EXIT_USAGE)
    return CostModel(name=data["name"], source=data["source"], units=data["units"],
                     ops={k: float(v) for k, v in data["ops"].items()},
                     description=data.get("description", ""),
                     unverified=tuple(data.get("unverified", [])))
