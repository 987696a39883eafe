"""Cores and thread pools for parallel worker processes (tune workers, a grid's workers).

Two worker processes on two cores each start a thread pool as wide as the machine
(PyTorch, TensorFlow, OpenMP): four busy threads on two cores, each process slowed by
the other's. Every worker therefore gets as many intra-op threads as its share of the
cores and, when asked, is bound to that share. No framework imports here: the variables
must be set before the worker imports one.
"""
from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def usable_cores() -> list[int]:
    """The cores this process may run on (its affinity mask: ``taskset`` narrows it)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - no affinity API (macOS): every core
        return list(range(os.cpu_count() or 1))


def core_shares(workers: int) -> list[list[int]]:
    """The usable cores split into ``workers`` disjoint shares, as even as possible
    (workers beyond the number of cores share them round-robin)."""
    cores = usable_cores()
    if workers >= len(cores):
        return [[cores[i % len(cores)]] for i in range(workers)]
    size, extra = divmod(len(cores), workers)
    shares, start = [], 0
    for i in range(workers):
        end = start + size + (1 if i < extra else 0)
        shares.append(cores[start:end])
        start = end
    return shares


def thread_env(threads: int) -> dict[str, str]:
    """Intra-op thread counts for a worker that may use ``threads`` cores."""
    per = str(max(1, threads))
    return {k: per for k in THREAD_VARIABLES}


def limit_threads(threads: int) -> None:
    """In a fresh worker process: use ``threads`` intra-op threads (unless the user set them)."""
    for key, value in thread_env(threads).items():
        os.environ.setdefault(key, value)
