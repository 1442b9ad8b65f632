"""Optimisation passes: IR → IR rewrites ordered by the facts they require and ensure."""

from snncompile.passes.base import FACTS, Pass, PassResult, PassStats
from snncompile.passes.binarize import binarize
from snncompile.passes.dead_neurons import dead_neurons
from snncompile.passes.fold_batchnorm import fold_batchnorm
from snncompile.passes.fuse_convpep import fuse_convpep
from snncompile.passes.manager import DEFAULT, PASSES, order_passes, parse_passes, run_passes
from snncompile.passes.mask_patches import mask_patches
from snncompile.passes.prune_synapses import prune_synapses

__all__ = ["Pass", "PassResult", "PassStats", "FACTS", "PASSES", "DEFAULT", "order_passes", "parse_passes",
           "run_passes", "fold_batchnorm", "fuse_convpep", "binarize", "mask_patches", "prune_synapses",
           "dead_neurons"]
