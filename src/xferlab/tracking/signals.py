"""SIGTERM as an exception, so that a terminated process closes its MLflow run as KILLED.

Schedulers (and ``ProcessPoolExecutor`` shutdowns, ``timeout``, ``kill``) stop a process
with SIGTERM, whose default action ends Python without unwinding: the run would stay
RUNNING forever. :func:`handle_sigterm` turns the signal into :class:`Terminated`, raised in
the main thread like ``KeyboardInterrupt``, so every ``with`` block unwinds and the run
context manager records KILLED. While a run is being closed the signal is deferred
(:func:`deferred`), so that the bookkeeping itself cannot be cut in half.

This module does not import mlflow: the CLI may import :class:`Terminated` cheaply.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from types import FrameType
from typing import Iterator

EXIT_CODE = 128 + signal.SIGTERM  # the conventional status of a process ended by SIGTERM


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that ``except Exception`` blocks in
    training code or the runner do not swallow it.
    """

    exit_code = EXIT_CODE


_state = {"depth": 0, "pending": False}


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if _state["depth"]:
        _state["pending"] = True  # raised when the current bookkeeping block ends
        return
    raise Terminated(f"received signal {signum} (SIGTERM)")


def handle_sigterm() -> bool:
    """Install the SIGTERM -> :class:`Terminated` handler; idempotent.

    Returns False (and does nothing) outside the main thread, where Python cannot install
    signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGTERM while the block runs; raise :class:`Terminated` after it if one came."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if not _state["depth"] and _state["pending"]:
            _state["pending"] = False
            raise Terminated("received SIGTERM while closing a run")  # noqa: B012 - wins over others
