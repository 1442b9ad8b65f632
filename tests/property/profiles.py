"""Hypothesis settings profiles for the property tests, chosen by ``HYPOTHESIS_PROFILE``.

- ``ci`` (default): derandomized (the same examples on every run), no deadline, no example
  database; budgets sized so that ``tests/property`` runs in a few minutes on 2 cores.
- ``fast``: ``ci`` with a quarter of its examples (``make test-fast``: the quick subset for
  development; ``make test`` and CI run ``ci``).
- ``fuzz``: random examples with larger budgets (``make fuzz``); failures are kept in an
  example database under ``.pytest_cache/`` and replayed first on the next run.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

PROFILES = ("ci", "fast", "fuzz")
_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large]
_DB = Path(__file__).resolve().parents[2] / ".pytest_cache" / "hypothesis"

settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=True,
                          suppress_health_check=_SUPPRESS,
                          phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink))
settings.register_profile("fast", parent=settings.get_profile("ci"))
settings.register_profile("fuzz", deadline=None, print_blob=True, suppress_health_check=_SUPPRESS,
                          database=DirectoryBasedExampleDatabase(str(_DB)))

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in PROFILES:
    raise ValueError(f"HYPOTHESIS_PROFILE={PROFILE!r}: choose one of {', '.join(PROFILES)}")
settings.load_profile(PROFILE)


def budget(ci: int, fuzz: int) -> int:
    """``max_examples`` for the active profile."""
    if PROFILE == "fuzz":
        return fuzz
    return max(5, ci // 4) if PROFILE == "fast" else ci


def slow_phases() -> tuple[Phase, ...]:
    """Phases for properties whose examples take seconds (Lava runs): in ``ci`` a failure is
    reported as generated, without shrinking (minutes of Lava runs); ``fuzz`` shrinks it."""
    if PROFILE == "fuzz":
        return tuple(settings.default.phases)
    return (Phase.explicit, Phase.reuse, Phase.generate, Phase.target)
