"""Shared test set-up.

Torch runs single-threaded in tests: these models are small, and with other processes on
two cores a second OpenMP thread makes training an order of magnitude slower, not faster.
"""

import os

import torch

# Sessions default to a label file in the working directory, which later tests would resume.
os.environ.setdefault("ALWIDGET_STORE", ":memory:")
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".venv", "numba-cache"))
torch.set_num_threads(1)

pytest_plugins = ["fixtures.browser", "fixtures.postgres"]

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data"


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` fails, unless ALWIDGET_REQUIRE_ALL=1 (CI), where it fails."""
    if condition:
        return
    if os.environ.get("ALWIDGET_REQUIRE_ALL") == "1":
        pytest.fail(f"required for this run but missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """``../shared/data`` with the MNIST idx files."""
    require((SHARED_MNIST / "MNIST" / "raw").is_dir(), f"MNIST files under {SHARED_MNIST}")
    return SHARED_MNIST
