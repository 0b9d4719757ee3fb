"""Shared test set-up.

Torch runs single-threaded in tests: these models are small, and with other processes on
two cores a second OpenMP thread makes training an order of magnitude slower, not faster.
"""

import os
import tempfile
from pathlib import Path

import pytest
import torch
from fixtures.requirements import dependency_missing

# Sessions default to a label file in the working directory, which later tests would resume.
os.environ.setdefault("ALWIDGET_STORE", ":memory:")
os.environ.setdefault("ALWIDGET_CACHE", tempfile.mkdtemp(prefix="alwidget-cache-"))
# Absolute: kernels and notebooks started by the tests run in other working directories.
os.environ["NUMBA_CACHE_DIR"] = os.path.abspath(
    os.environ.get(
        "NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".venv", "numba-cache")
    )
)
torch.set_num_threads(1)

pytest_plugins = ["fixtures.browser", "fixtures.postgres"]

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """``../shared/data`` with the MNIST idx files."""
    if not (SHARED_MNIST / "MNIST" / "raw").is_dir():
        dependency_missing(f"MNIST files under {SHARED_MNIST}")
    return SHARED_MNIST
