"""MLflow glue: the only package of xferlab that imports mlflow.

- :mod:`store`: tracking URI, schema created once (process-safe), experiments.
- :mod:`runs`: one instance = one run, closed FINISHED / FAILED / KILLED whatever happens.
- :mod:`queries`: dedup (:func:`find_finished`) and the reaper of orphaned runs.
- :mod:`models`: Model Registry for Keras models and PyTorch state dicts, with lineage.
- :mod:`signals`: SIGTERM -> :class:`Terminated` (no mlflow import).

Names are loaded lazily so that ``from xferlab.tracking import Terminated`` does not pay for
importing mlflow (~2 s).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "tracking_uri": "store", "ensure_store": "store", "get_client": "store",
    "get_experiment_id": "store", "store_lock": "store",
    "start_instance_run": "runs", "start_run": "runs", "TrackedRun": "runs", "InstanceRun": "runs",
    "run_name": "runs", "ROLES": "runs",
    "find_finished": "queries", "finished_runs": "queries", "reap": "queries", "iter_runs": "queries",
    "download_artifact": "queries", "get_run": "queries", "log_artifacts": "queries",
    "ModelRef": "models", "register_keras_model": "models", "load_keras_model": "models",
    "register_torch_state": "models", "load_torch_state": "models", "model_exists": "models",
    "resolve_model": "models", "record_lineage": "models", "CHAMPION": "models",
    "handle_sigterm": "signals", "Terminated": "signals",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'xferlab.tracking' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"xferlab.tracking.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
