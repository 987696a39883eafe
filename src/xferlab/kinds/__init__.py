"""Experiment kinds: one record per kind, declared once, in the kind's own module.

A :class:`Kind` says everything the rest of xferlab needs to know about one family of
instances: its spec schema, the paper and MLflow experiment it belongs to, the job that
trains it, the checks a dry run can make, the registered models its job loads (a FINISHED
run counts only while they resolve to the versions it recorded) and of those the ones it
needs first (its prerequisites, planned by the runner before its run opens), the model it
registers, and what runs after a grid of it. The runner, the spec loader, the catalog and
the summaries read the record and never test a kind's name. (The report's items do select runs by kind
tag: a new kind's runs appear in a report table once an item is registered for them.)

A new kind is one new module in this package that defines ``KIND`` (found by
:data:`xferlab.registry.KINDS` without being listed anywhere else) plus its job function.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from xferlab.errors import UserError
from xferlab.registry import KINDS

if TYPE_CHECKING:
    from xferlab.spec import Instance


@dataclass(frozen=True)
class Load:
    """A registered model a run of the kind loads, as its lineage tags name it."""

    role: str  # the run's lineage tags are xferlab.<role>_uri / _version (source, orthogonal, init)
    ref: str  # registry name or models:/ URI, as the spec gives it
    key: str  # the spec key naming it, for messages


@dataclass(frozen=True)
class Prerequisite:
    """A registered model an instance loads, and the spec that trains it when missing."""

    model: str  # registered model name (never a models:/ URI: those are pinned, not planned)
    spec: str  # path of the pretraining spec, relative to the instance's spec file or the cwd
    key: str  # the spec key naming the model, for messages


def prerequisites(loads: list[Load], pretrain: str | None) -> list[Prerequisite]:
    """The loaded models the runner may pretrain: registry names (not pinned URIs), when the
    spec names a pretraining spec."""
    return [Prerequisite(load.ref, pretrain, load.key) for load in loads if pretrain and model_ref(load.ref)]


def _none(cfg: Any) -> list[Any]:
    return []


def _nothing(instance: "Instance") -> str | None:
    return None


@dataclass(frozen=True)
class Kind:
    """The record of one experiment kind (see the module docstring)."""

    name: str
    help: str
    schema: type  # the spec dataclass: sections of frozen dataclasses
    paper: str  # v2s | antitransfer
    experiment: str  # MLflow experiment of its runs
    job: str  # "module:function", job(instance, run) -> final metrics
    checks: tuple[Callable[[Any], None], ...] = ()  # typed cfg -> None or UserError (dry run)
    needs: Callable[[Any], list[Prerequisite]] = _none  # typed cfg -> models to have first
    # typed cfg -> every registered model a run loads: a FINISHED run made with another
    # version than the one a new run would load now is not this instance's result any more
    loads: Callable[[Any], list[Load]] = _none
    registers: Callable[["Instance"], str | None] = _nothing  # the model name a run registers
    after_grid: str | None = None  # "module:function"(first instance) -> line to print, after a grid ran
    # instance -> None, or why its data cannot take this setting (a grid cell such as seg 10
    # on a series too long for 10 copies): the runner skips it and says so
    unfit: Callable[["Instance"], str | None] = _nothing

    def run_job(self, instance: "Instance", run: Any) -> dict[str, float]:
        """Train ``instance`` inside its open ``run``; the final metrics."""
        from xferlab.registry import resolve

        return resolve(self.job)(instance, run) or {}

    def check(self, cfg: Any) -> None:
        for check in self.checks:
            check(cfg)


def get_kind(name: Any) -> Kind:
    """The record of kind ``name``; a one-line error naming the nearest kind otherwise."""
    if not isinstance(name, str) or name not in KINDS:
        raise UserError(f"unknown kind {name!r}: {KINDS.unknown_message(str(name)).split(': ', 1)[1]}")
    return KINDS.get(name)


def kind_names() -> list[str]:
    return KINDS.names()


def model_ref(name: str | None) -> bool:
    """True for a name the runner may plan (a registry name, not a pinned models:/ URI)."""
    return bool(name) and not str(name).startswith("models:/")
