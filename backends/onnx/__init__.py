"""ONNX backend: a compiled netlist's single time step (and its ANN variant) as ONNX models
that onnxruntime runs; unrolled over T it reproduces the reference simulator's spikes."""
