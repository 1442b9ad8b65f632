"""Optimisation passes: each a function graph → stats, run in order by the pass manager."""

from snncompile.passes.base import PassStats
from snncompile.passes.binarize import binarize
from snncompile.passes.dead_neurons import dead_neurons
from snncompile.passes.fold_batchnorm import fold_batchnorm
from snncompile.passes.fuse_convpep import fuse_convpep
from snncompile.passes.manager import DEFAULT, PASSES, parse_passes, run_passes
from snncompile.passes.mask_patches import mask_patches
from snncompile.passes.prune_synapses import prune_synapses

__all__ = ["PassStats", "PASSES", "DEFAULT", "parse_passes", "run_passes", "fold_batchnorm",
           "fuse_convpep", "binarize", "mask_patches", "prune_synapses", "dead_neurons"]
