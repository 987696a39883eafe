"""Is a FINISHED run still its instance's result? Only while the registered models it
loaded are the ones a new run of the instance would load now.

A spec names a model (``model.source: attrnn``), not a version, so the instance hash does
not change when a better model is registered under that name. The name resolves to its
``champion`` when a run opens, and the run records the pinned version it loaded
(:func:`xferlab.tracking.models.record_lineage`: tags ``xferlab.<role>_uri``). Once the
champion moves, the runs made with the old version answer another question than the spec
now asks: the runner runs them again and a claim does not count them, while the old runs
stay in the store as what they were (the report keeps the newest run of an instance).
"""
from __future__ import annotations

from typing import Any, Mapping

from xferlab.errors import UserError

Lineage = dict[str, "str | None"]  # role -> pinned URI a new run would load (None: not registered)


def expected_lineage(instance: Any, memo: dict[str, str | None] | None = None) -> Lineage:
    """{role: pinned URI} of every registered model a run of ``instance`` would load now
    (the kind's ``loads``); ``memo`` shares resolutions between the instances of a plan."""
    from xferlab.kinds import get_kind
    from xferlab.tracking.models import resolve_model

    memo = {} if memo is None else memo
    out: Lineage = {}
    try:
        loads = get_kind(instance.kind).loads(instance.cfg)
    except UserError:  # another tool's kind: nothing known to compare
        return out
    for load in loads:
        if load.ref not in memo:
            try:
                memo[load.ref] = resolve_model(load.ref).uri
            except UserError:
                memo[load.ref] = None  # not registered (yet, or any more)
        out[load.role] = memo[load.ref]
    return out


def stale_reason(tags: Mapping[str, str], expected: Lineage) -> str | None:
    """Why a FINISHED run with these tags is not its instance's result any more (None: it
    is). A model that is not registered now leaves the run standing: nothing newer exists
    to answer the spec with (a deleted model does not make its runs wrong)."""
    for role, uri in expected.items():
        used = tags.get(f"xferlab.{role}_uri")
        if uri is not None and used != uri:
            return f"it used {used or f'no recorded {role} model'}; its {role} model is now {uri}"
    return None


def stale(run: Any, instance: Any, memo: dict[str, str | None] | None = None) -> str | None:
    """:func:`stale_reason` of a FINISHED ``run`` of ``instance`` (the plan's and the claims'
    one test); ``memo`` shares the registry lookups between calls."""
    return stale_reason(run.data.tags, expected_lineage(instance, memo))
