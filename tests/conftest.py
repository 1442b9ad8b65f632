import logging
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))          # `backends` and `models` import from the checkout
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
os.environ.setdefault("SNNCOMPILE_VERIFY_IR", "1")   # the pass manager verifies the IR after every pass
logging.getLogger("torch._library.triton").setLevel(logging.ERROR)

MODELS = ROOT / "models"


@pytest.fixture(scope="session")
def digits_model() -> Path:
    return MODELS / "digits_scnn.pt"


@pytest.fixture(scope="session")
def digits_test() -> Path:
    return MODELS / "digits_test.npz"
