"""Frontend: load a checkpoint safely, trace it with torch.fx, build the IR."""

from snncompile.frontend.load import LoadedModel, load_model
from snncompile.frontend.trace import TraceResult, trace_model

__all__ = ["LoadedModel", "load_model", "TraceResult", "trace_model"]
