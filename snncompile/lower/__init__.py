"""Lowering of the IR to neuron populations joined by sparse affine projections."""

from snncompile.lower.matrices import conv2d_matrix, linear_matrix, pool2d_matrix
from snncompile.lower.populations import NetworkPlan, Population, Projection, plan_network

__all__ = ["conv2d_matrix", "linear_matrix", "pool2d_matrix", "NetworkPlan", "Population", "Projection", "plan_network"]
