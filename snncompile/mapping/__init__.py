"""Core mapping: partition populations onto neuromorphic cores under per-core limits."""

from snncompile.mapping.mapper import ChipProfile, CoreMap, load_chip, map_to_cores

__all__ = ["ChipProfile", "CoreMap", "load_chip", "map_to_cores"]
