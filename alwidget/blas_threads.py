"""numpy's BLAS/LAPACK on one thread for the small factorizations between torch jobs.

LAPACK's threads and torch's OpenMP threads both spin while they wait, and on 2 cores they
spin against each other: the cold start's SVD of 2 000 × 128 features took 2.8 s of the
first batch on two threads right after the pool was encoded, and 0.03 s on one. The
matrices factorized here are a few thousand rows by a few hundred columns at most, where
one thread loses nothing even on a quiet machine.
"""

from __future__ import annotations

__all__ = ["one_lapack_thread"]


def one_lapack_thread():
    """A context manager in which numpy's BLAS and LAPACK calls use one thread."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")
