"""Loihi-style fixed point: quantization of a netlist and the integer neuron datapath."""
