"""spikingjelly 2.0's own model zoo, importable without torchvision.

The zoo modules import ``load_state_dict_from_url`` from torchvision at module level (for
pretrained weights, which tests never download). torchvision is not installed here (its
wheels pull a second torch), so a stand-in that refuses downloads is registered first.
"""

from __future__ import annotations

import importlib
import sys
import types


def _no_downloads(*args, **kwargs):
    raise RuntimeError("tests never download pretrained weights")


def _stub_torchvision() -> None:
    try:
        importlib.import_module("torchvision")
        return
    except ImportError:
        pass
    tv = types.ModuleType("torchvision")
    utils = types.ModuleType("torchvision._internally_replaced_utils")
    utils.load_state_dict_from_url = _no_downloads
    tv._internally_replaced_utils = utils
    sys.modules["torchvision"] = tv
    sys.modules["torchvision._internally_replaced_utils"] = utils


def zoo(name: str) -> types.ModuleType:
    """``spikingjelly.activation_based.model.<name>``."""
    _stub_torchvision()
    return importlib.import_module(f"spikingjelly.activation_based.model.{name}")
