"""What the machine can do right now, measured in the benchmark's own run."""

from __future__ import annotations

import time

import torch


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Float32 ``size``² matmul rate at this moment: the practical peak to quote others against."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9
