"""Target emitters: each backend takes a netlist and runs it or writes an artifact."""

from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.netlist.target import register


def _lava():
    from backends.lava.target import LavaTarget

    return LavaTarget()


register("lava", _lava)


def _onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise SnnCompileError(f"the onnx target needs the onnx and onnxruntime packages ({exc})",
                              "pip install onnx onnxruntime (versions in requirements.txt)", EXIT_USAGE) from None
    from backends.onnx.target import OnnxTarget

    return OnnxTarget()


register("onnx", _onnx)


def _nir():
    from backends.nir.target import NirTarget

    return NirTarget()


register("nir", _nir)


def _netx():
    from backends.netx.target import NetxTarget

    return NetxTarget()


register("netx", _netx)
