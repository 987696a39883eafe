"""A small generic name -> factory registry (datasets, models, report tables, kinds).

Entries are either callables or lazy ``"package.module:attribute"`` strings, so that
listing or validating names never imports TensorFlow or PyTorch. Prefix entries
(``"ucr/"``) serve whole families of names whose members are only known at run time.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
from typing import Any, Callable, Generic, TypeVar

from xferlab.errors import UserError

T = TypeVar("T")


def _resolve(target: Any) -> Any:
    """Import a ``"module:attr"`` string; return anything else unchanged."""
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)
    return target


class Registry(Generic[T]):
    """Name -> factory mapping with glob listing and helpful errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._prefixes: dict[str, Any] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, target: Any = None, *, help: str = "") -> Any:
        """Register ``target`` under ``name``; usable as a decorator when target is None."""
        if target is None:
            def decorate(fn: Any) -> Any:
                self.register(name, fn, help=help)
                return fn
            return decorate
        if name in self._entries or name in self._prefixes:
            raise ValueError(f"duplicate {self.kind} name {name!r}")
        if name.endswith("/"):
            self._prefixes[name] = target
        else:
            self._entries[name] = target
        self._help[name] = help
        return target

    def __contains__(self, name: str) -> bool:
        return name in self._entries or any(name.startswith(p) and len(name) > len(p) for p in self._prefixes)

    def names(self, pattern: str = "*") -> list[str]:
        """Registered exact names (and prefix families as ``prefix*``) matching a glob."""
        names = list(self._entries) + [p + "*" for p in self._prefixes]
        return sorted(n for n in names if fnmatch.fnmatch(n, pattern))

    def help(self, name: str) -> str:
        return self._help.get(name, self._help.get(name.rstrip("*"), ""))

    def get(self, name: str) -> Callable[..., T]:
        """The factory for ``name``; prefix factories are bound to the full name."""
        if name in self._entries:
            return _resolve(self._entries[name])
        for prefix, target in self._prefixes.items():
            if name.startswith(prefix) and len(name) > len(prefix):
                factory = _resolve(target)
                return lambda *a, **kw: factory(name, *a, **kw)
        raise UserError(self.unknown_message(name))

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        return self.get(name)(*args, **kwargs)

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(self.names()[:12])}"
        return f"unknown {self.kind} {name!r}: {hint} (list them with `xferlab list {self.kind}s`)"


# The project's registries. Entries are added in xferlab.catalog with lazy
# "module:attr" targets so that listing names never imports a framework.
DATASETS: Registry[Any] = Registry("dataset")
MODELS: Registry[Any] = Registry("model")
TABLES: Registry[Any] = Registry("table")
KINDS: Registry[Any] = Registry("kind")
