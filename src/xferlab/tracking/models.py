"""Pretrained source and orthogonal models in the MLflow Model Registry, with lineage.

Each registration logs an MLflow *logged model* in the producing run's experiment (linked
to the run as an output), adds a registry version and moves the ``champion`` alias to it
only when its metric beats the current champion's (the metric is a version tag). A
reference resolves to a pinned ``models:/<name>/<version>`` and the run that produced it
(:class:`ModelRef`), which downstream runs record as tags and as a model input.

Keras models use the ``keras`` flavor. PyTorch models are stored as *data only*: an
MLmodel with an ``xferlab_torch_state`` flavor, ``state_dict.pt`` (tensors, loaded with
``torch.load(weights_only=True)``) and ``config.json``; no pickled class, nothing from the
file is executed (and no 6-8 s ``torch.export``). TensorFlow/torch are imported lazily here.

The logged model is created through :class:`MlflowClient` rather than
``mlflow.<flavor>.log_model``: in MLflow 3.17 ``Model.log`` puts the logged model into the
*fluent* active experiment (``Default``, id 0, when no fluent run is active) instead of the
run's experiment, and infers pip requirements by reloading the model in a subprocess.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Mapping

from mlflow import MlflowClient
from mlflow.entities import LoggedModelInput, LoggedModelOutput
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from xferlab.errors import UserError
from xferlab.serving import CODE_DIR, CONFIG_FILE, SHIPPED, STATE_FILE
from xferlab.tracking import store
from xferlab.tracking.queries import quote
from xferlab.tracking.runs import TrackedRun

CHAMPION = "champion"
DEFAULT_HINT = "register one first, e.g. pretrain it with `xferlab run experiments/sources/...`"
TORCH_FLAVOR = "xferlab_torch_state"
KERAS_DIR, KERAS_FILE = "xferlab", "model.keras"  # the trainable model beside the exported one
T_FORMAT, T_METRIC, T_METRIC_NAME, T_HIGHER = ("xferlab.format", "xferlab.metric",
                                               "xferlab.metric_name", "xferlab.higher_is_better")
_log = logging.getLogger("xferlab.tracking")


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: pinned URI plus lineage (the run that produced it)."""

    name: str | None  # registered name (None for a bare ``models:/m-...`` logged model)
    version: int | None
    uri: str  # pinned: models:/<name>/<version> or models:/<model_id>
    run_id: str | None
    model_id: str | None = None
    format: str | None = None  # keras | torch_state | None (registered outside xferlab)

    def tags(self, role: str = "source") -> dict[str, str]:
        """Lineage tags for a downstream run: ``xferlab.<role>_model``, ``_version``, ``_uri``."""
        tags = {f"xferlab.{role}_model": self.name or self.model_id or self.uri,
                f"xferlab.{role}_uri": self.uri}
        if self.version is not None:
            tags[f"xferlab.{role}_version"] = str(self.version)
        if self.run_id:
            tags[f"xferlab.{role}_run"] = self.run_id
        return tags


def record_lineage(run: TrackedRun, ref: ModelRef, role: str = "source") -> None:
    """Record on ``run`` which model version it used (tags + an MLflow model input)."""
    run.set_tags(ref.tags(role))
    if ref.model_id:
        store.get_client().log_inputs(run.run_id, models=[LoggedModelInput(ref.model_id)])


# -- registration ------------------------------------------------------------------------
def _pins(*names: str) -> list[str]:
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return pins


def _run_and_experiment(client: MlflowClient, run: TrackedRun | str) -> tuple[str, str]:
    if isinstance(run, TrackedRun):
        return run.run_id, run.experiment_id
    return run, client.get_run(run).info.experiment_id


def _log_model(client: MlflowClient, run_id: str, experiment_id: str, name: str, fmt: str,
               save: Callable[[str, Model], None]) -> str:
    """Create a logged model of ``run_id``, fill it with ``save(path, mlflow_model)``; its id."""
    lm = client.create_logged_model(experiment_id, name=re.sub(r"[/:.%\"']", "_", name),
                                    source_run_id=run_id, tags={T_FORMAT: fmt}, model_type=fmt)
    try:
        with tempfile.TemporaryDirectory(prefix="xferlab-model-") as tmp:
            path = os.path.join(tmp, "model")
            save(path, Model(artifact_path=lm.artifact_location, run_id=run_id,
                             model_uuid=lm.model_id, model_id=lm.model_id))
            client.log_model_artifacts(lm.model_id, path)
    except BaseException:
        client.finalize_logged_model(lm.model_id, "FAILED")
        raise
    client.finalize_logged_model(lm.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(lm.model_id, step=0)])
    return lm.model_id


def _register(run: TrackedRun | str, name: str, fmt: str, save: Callable[[str, Model], None],
              metric: float, metric_name: str, higher_is_better: bool, alias: str) -> int:
    client = store.get_client()
    run_id, experiment_id = _run_and_experiment(client, run)
    model_id = _log_model(client, run_id, experiment_id, name, fmt, save)
    tags = {T_FORMAT: fmt, T_METRIC: repr(float(metric)), T_METRIC_NAME: metric_name,
            T_HIGHER: str(bool(higher_is_better)).lower()}
    # one registrant at a time, so that two "better than champion" checks cannot interleave
    with store.store_lock(client.tracking_uri, "registry"):
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        mv = client.create_model_version(name, source=f"models:/{model_id}", run_id=run_id,
                                         tags=tags, model_id=model_id)
        if _beats_champion(client, name, float(metric), higher_is_better, alias):
            client.set_registered_model_alias(name, alias, mv.version)
    return int(mv.version)


def _beats_champion(client: MlflowClient, name: str, metric: float, higher: bool, alias: str) -> bool:
    """True if there is no (comparable) champion or ``metric`` is strictly better."""
    try:
        champion = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return True
    try:
        best = float(champion.tags.get(T_METRIC, "nan"))
    except ValueError:
        best = math.nan
    if math.isnan(best):
        return not math.isnan(metric)
    return metric > best if higher else metric < best


def register_keras_model(model: Any, name: str, run: TrackedRun | str, metric: float,
                         higher_is_better: bool = True, alias: str = CHAMPION,
                         metric_name: str = "metric", input_example: Any = None) -> int:
    """Log a Keras model from ``run`` and register it as a new version of ``name``; its number.

    The ``keras`` flavour holds the model *exported* (a TensorFlow SavedModel with a
    signature: float32 (n, 16000) raw audio in, (n, classes) probabilities out), so
    ``mlflow.keras.load_model``, ``mlflow.pyfunc.load_model`` and ``mlflow models serve``
    need neither xferlab nor kapre. ``xferlab/model.keras`` beside it is the trainable Keras
    model that xferlab itself loads (with its layers registered) to reprogram.
    """
    import mlflow.keras
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    reqs = _pins("tensorflow", "keras")
    signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *model.input_shape[1:]))]),
                               outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *model.output_shape[1:]))]))

    def save(path: str, mlflow_model: Model) -> None:
        os.makedirs(path)  # mlflow 3.17 writes the input example before it creates the folder
        # Keras's export prints every endpoint and each captured variable's TensorSpec (dozens
        # of lines) to stdout: noise between a run's progress lines, so it is swallowed.
        with contextlib.redirect_stdout(io.StringIO()):
            mlflow.keras.save_model(model, path, mlflow_model=mlflow_model, pip_requirements=reqs,
                                    signature=signature,
                                    input_example=None if input_example is None else np.asarray(input_example, np.float32),
                                    save_exported_model=True)
        os.makedirs(os.path.join(path, KERAS_DIR))
        model.save(os.path.join(path, KERAS_DIR, KERAS_FILE))

    return _register(run, name, "keras", save, metric, metric_name, higher_is_better, alias)


def register_torch_state(state_dict: Mapping[str, Any], model_config: Mapping[str, Any], name: str,
                         run: TrackedRun | str, metric: float, higher_is_better: bool = True,
                         alias: str = CHAMPION, metric_name: str = "metric") -> int:
    """Register a PyTorch ``state_dict`` + JSON ``model_config`` (data only) as a version of
    ``name``, loadable with ``mlflow.pyfunc`` (:mod:`xferlab.serving`, shipped with it)."""
    import mlflow.pyfunc
    import torch

    tensors = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in state_dict.items()}
    config_text = json.dumps(dict(model_config), sort_keys=True, indent=2)  # TypeError if not JSON

    def save(path: str, mlflow_model: Model) -> None:
        os.makedirs(path)
        torch.save(tensors, os.path.join(path, STATE_FILE))
        with open(os.path.join(path, CONFIG_FILE), "w") as handle:
            handle.write(config_text)
        with open(os.path.join(path, "requirements.txt"), "w") as handle:
            handle.write("\n".join(_pins("torch")) + "\n")
        mlflow_model.add_flavor(TORCH_FLAVOR, state_dict=STATE_FILE, config=CONFIG_FILE,
                                torch_version=str(torch.__version__),
                                loader="xferlab.tracking.load_torch_state (torch.load weights_only=True)")
        _ship_serving_code(path)
        mlflow.pyfunc.add_to_model(mlflow_model, loader_module="xferlab.serving", code=CODE_DIR)
        mlflow_model.save(os.path.join(path, "MLmodel"))

    return _register(run, name, "torch_state", save, metric, metric_name, higher_is_better, alias)


def _ship_serving_code(path: str) -> None:
    """Copy :mod:`xferlab.serving` and what it imports into ``<path>/code/xferlab/``."""
    import shutil

    import xferlab

    package = os.path.dirname(xferlab.__file__)
    for rel in SHIPPED:
        target = os.path.join(path, CODE_DIR, "xferlab", rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(package, rel), target)


# -- resolution and loading --------------------------------------------------------------
def model_exists(name: str) -> bool:
    try:
        store.get_client().get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def _latest(client: MlflowClient, name: str) -> ModelVersion | None:
    versions = client.search_model_versions(f"name = {quote(name)}", max_results=1,
                                            order_by=["version_number DESC"])
    return versions[0] if versions else None


def _version(client: MlflowClient, name: str, selector: str | None, hint: str) -> ModelVersion:
    """Version ``selector`` (number, 'latest', '@alias'); None: champion, else latest."""
    if not model_exists(name):
        raise UserError(f"no registered model {name!r}: {hint}")
    if selector is None or selector.startswith("@"):
        alias = (selector or "@" + CHAMPION)[1:]
        try:
            return client.get_model_version_by_alias(name, alias)
        except MlflowException:
            if selector is not None:
                raise UserError(f"registered model {name!r} has no alias {alias!r}: "
                                f"use models:/{name}/<version> or models:/{name}/latest") from None
    if selector is None or selector == "latest":
        found = _latest(client, name)
        if found is None:
            raise UserError(f"registered model {name!r} has no versions: {hint}")
        return found
    if not selector.isdigit():
        raise UserError(f"model version {selector!r} of {name!r} is not a number, 'latest' or '@alias'")
    try:
        return client.get_model_version(name, selector)
    except MlflowException:
        raise UserError(f"registered model {name!r} has no version {selector}: see "
                        f"`mlflow models` / the MLflow UI for its versions") from None


_TORCH_STATES: dict[tuple, tuple[dict[str, Any], dict[str, Any]]] = {}  # pinned version -> (state, config)


def resolve_model(ref: str, hint: str = DEFAULT_HINT) -> ModelRef:
    """``name`` | ``models:/name/3`` | ``models:/name/latest`` | ``models:/name@alias`` |
    ``models:/m-<id>`` -> a pinned :class:`ModelRef`."""
    client = store.get_client()
    body = ref[len("models:/"):] if ref.startswith("models:/") else ref
    if re.fullmatch(r"m-[0-9a-f]{32}", body):
        try:
            lm = client.get_logged_model(body)
        except MlflowException:
            raise UserError(f"no logged model {body!r}: {hint}") from None
        return ModelRef(None, None, f"models:/{body}", lm.source_run_id, body, lm.tags.get(T_FORMAT))
    if "@" in body:
        name, alias = body.rsplit("@", 1)
        selector: str | None = "@" + alias
    elif "/" in body:
        name, selector = body.split("/", 1)
    else:
        name, selector = body, None
    mv = _version(client, name, selector, hint)
    return ModelRef(name, int(mv.version), f"models:/{name}/{mv.version}", mv.run_id,
                    _model_id_of(mv), mv.tags.get(T_FORMAT))


def _model_id_of(mv: ModelVersion) -> str | None:
    """The logged model behind a version (the sqlite registry does not keep ``model_id``)."""
    if mv.model_id:
        return mv.model_id
    found = re.fullmatch(r"models:/(m-[0-9a-f]{32})", mv.source or "")
    return found.group(1) if found else None


def _check_format(ref: ModelRef, wanted: str) -> None:
    if ref.format is not None and ref.format != wanted:
        raise UserError(f"{ref.uri} holds a {ref.format} model, not {wanted}: "
                        "point the spec at a model of the right framework")


def load_keras_model(ref: str, hint: str = DEFAULT_HINT,
                     custom_objects: Mapping[str, Any] | None = None) -> tuple[Any, ModelRef]:
    """The trainable Keras model behind ``ref`` (see :func:`resolve_model`) and its
    :class:`ModelRef`. The caller has imported the modules that register its layers."""
    resolved = resolve_model(ref, hint)
    _check_format(resolved, "keras")
    import keras  # imports TensorFlow (~8 s): only once the reference is known to be good
    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory(prefix="xferlab-load-") as tmp:
        local = download_artifacts(artifact_uri=resolved.uri, dst_path=tmp)
        trainable = os.path.join(local, KERAS_DIR, KERAS_FILE)
        if os.path.isfile(trainable):
            return keras.models.load_model(trainable, custom_objects=custom_objects), resolved
        import mlflow.keras  # registered before models were exported: the flavour is the Keras file

        return mlflow.keras.load_model(local, custom_objects=custom_objects), resolved


def load_torch_state(ref: str, hint: str = DEFAULT_HINT,
                     map_location: str = "cpu") -> tuple[dict[str, Any], dict[str, Any], ModelRef]:
    """``(state_dict, model_config, ModelRef)``; weights load with ``weights_only=True``.

    A pinned version never changes, so a process that loads the same one again (a tune
    worker's next trial, a grid worker's next instance) takes it from memory instead of
    downloading it: the key is the store, the pinned URI and the run and logged model
    behind it (a model deleted and registered again under the same version number has
    another run). Callers get their own dict; the tensors are shared and must be copied
    (``load_state_dict`` does), never changed in place."""
    import torch
    from mlflow.artifacts import download_artifacts

    resolved = resolve_model(ref, hint)
    _check_format(resolved, "torch_state")
    key = (store.tracking_uri(), resolved.uri, resolved.run_id, resolved.model_id, map_location)
    if key not in _TORCH_STATES:
        with tempfile.TemporaryDirectory(prefix="xferlab-load-") as tmp:
            local = download_artifacts(artifact_uri=resolved.uri, dst_path=tmp)
            state = torch.load(os.path.join(local, STATE_FILE), map_location=map_location, weights_only=True)
            with open(os.path.join(local, CONFIG_FILE)) as handle:
                config = json.load(handle)
        while len(_TORCH_STATES) >= 4:  # a few models per process at most (orthogonal, init)
            _TORCH_STATES.pop(next(iter(_TORCH_STATES)))
        _TORCH_STATES[key] = (state, config)
    state, config = _TORCH_STATES[key]
    return dict(state), json.loads(json.dumps(config)), resolved