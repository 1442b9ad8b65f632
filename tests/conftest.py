import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
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


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A TMPDIR short enough for Lava's Unix sockets: under pytest-xdist, tmp_path can pass
    the 49 characters a TMPDIR may have (backends/lava/backend.py SOCKET_PATH_MAX)."""
    d = Path(tempfile.mkdtemp(prefix="snh-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)
