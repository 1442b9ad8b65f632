"""Loads the hypothesis profile (``ci`` unless ``HYPOTHESIS_PROFILE`` says otherwise)."""

from . import profiles  # noqa: F401  (registers and loads the profiles on import)
