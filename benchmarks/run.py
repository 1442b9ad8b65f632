"""Run every benchmark (``make bench``). Each prints ratios against a baseline measured in
the same process; nothing here asserts on time."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name != "run")
    for name in names:
        print(f"\n=== benchmarks.{name} ===", flush=True)
        mod = importlib.import_module(f"benchmarks.{name}")
        saved = sys.argv
        sys.argv = [name]
        try:
            mod.main()
        finally:
            sys.argv = saved
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
