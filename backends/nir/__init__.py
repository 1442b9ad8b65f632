"""NIR target: the compiled netlist written as a NIR graph (HDF5), see docs/nir.md."""
