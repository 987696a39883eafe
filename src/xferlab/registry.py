"""A small generic name -> factory registry (datasets, models, report tables, kinds).

Entries are either callables or lazy ``"package.module:attribute"`` strings, so that
listing or validating names never imports TensorFlow or PyTorch. Prefix entries
(``"ucr/"``) serve whole families of names whose members are only known at run time.
"""
from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib
import pkgutil
from typing import Any, Callable, Generic, TypeVar

from xferlab.errors import UserError

T = TypeVar("T")


def resolve(target: Any) -> Any:
    """Import a ``"module:attr"`` string; return anything else unchanged."""
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)
    return target


class Registry(Generic[T]):
    """Name -> factory mapping with glob listing and helpful errors."""

    def __init__(self, kind: str, loader: Callable[["Registry[T]"], None] | None = None) -> None:
        """``loader`` fills the registry on first use (e.g. by importing the modules that
        declare its entries), so importing the registry itself stays free."""
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._prefixes: dict[str, Any] = {}
        self._help: dict[str, str] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._loader = loader

    def _load(self) -> None:
        if self._loader is not None:
            loader, self._loader = self._loader, None
            loader(self)

    def register(self, name: str, target: Any = None, *, help: str = "", **meta: Any) -> Any:
        """Register ``target`` under ``name``; usable as a decorator when target is None.

        ``meta`` is what else the registry's users need to know about the entry (a
        dataset's options, whether it reads the user's data root), kept beside it.
        """
        if target is None:
            def decorate(fn: Any) -> Any:
                self.register(name, fn, help=help, **meta)
                return fn
            return decorate
        if name in self._entries or name in self._prefixes:
            raise ValueError(f"duplicate {self.kind} name {name!r}")
        if name.endswith("/"):
            self._prefixes[name] = target
        else:
            self._entries[name] = target
        self._help[name] = help
        self._meta[name] = meta
        return target

    def _key(self, name: str) -> str | None:
        """The entry serving ``name``: itself, or the prefix family it belongs to."""
        self._load()
        if name in self._entries:
            return name
        return next((p for p in self._prefixes if name.startswith(p) and len(name) > len(p)), None)

    def __contains__(self, name: str) -> bool:
        return self._key(name) is not None

    def names(self, pattern: str = "*") -> list[str]:
        """Registered exact names (and prefix families as ``prefix*``) matching a glob."""
        self._load()
        names = list(self._entries) + [p + "*" for p in self._prefixes]
        return sorted(n for n in names if fnmatch.fnmatch(n, pattern))

    def help(self, name: str) -> str:
        self._load()
        return self._help.get(name, self._help.get(name.rstrip("*"), ""))

    def meta(self, name: str) -> dict[str, Any]:
        """What was registered beside the entry serving ``name`` (empty when unknown)."""
        key = self._key(name) or (name if name in self._prefixes else None)
        return dict(self._meta.get(key, {})) if key else {}

    def get(self, name: str) -> Callable[..., T]:
        """The factory for ``name``; prefix factories are bound to the full name."""
        self._load()
        if name in self._entries:
            return resolve(self._entries[name])
        for prefix, target in self._prefixes.items():
            if name.startswith(prefix) and len(name) > len(prefix):
                factory = resolve(target)
                return lambda *a, **kw: factory(name, *a, **kw)
        raise UserError(self.unknown_message(name))

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        return self.get(name)(*args, **kwargs)

    def unknown_message(self, name: str) -> str:
        self._load()
        close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(self.names()[:12])}"
        return f"unknown {self.kind} {name!r}: {hint} (list them with `xferlab list {self.kind}s`)"

    def in_order(self, pattern: str = "*") -> list[str]:
        """Like :meth:`names`, but in registration order: where the order means something
        (the report's items are registered in the page's order), sorting would lose it."""
        wanted = set(self.names(pattern))  # names() also fills a registry that loads lazily
        shown = (n + "*" if n in self._prefixes else n for n in self._help)  # _help: every name, in order
        return [n for n in shown if n in wanted]


def discover(package: str, attribute: str) -> list[Any]:
    """``module.<attribute>`` of every module of ``package`` that defines it.

    This is how a dataset or a kind is added in one place: a module that declares its
    table (``TASKS``) or record (``KIND``) is found without being listed anywhere else.
    """
    pkg = importlib.import_module(package)
    found = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package}.{info.name}")
        if hasattr(module, attribute):
            found.append(module)
    return found


def _load_datasets(registry: Registry[Any]) -> None:
    """Each data module's ``TASKS`` (name -> (factory, help)), with its ``OPTIONS`` (the
    ``data.*`` keys its datasets take), ``LOCAL`` (reads the user's copy under
    ``data.root``), ``check`` (a cheap pre-run lookup) and ``VERSION`` (changes when what it
    produces changes: part of the feature cache's key), if it has them."""
    for module in discover("xferlab.data", "TASKS"):
        for name, (factory, help_text) in module.TASKS.items():
            # factories take (name, data); a prefix family's is bound to the full name on use
            target = factory if name.endswith("/") else functools.partial(factory, name)
            registry.register(name, target, help=help_text, options=getattr(module, "OPTIONS", None),
                              local=getattr(module, "LOCAL", False), check=getattr(module, "check", None),
                              version=getattr(module, "VERSION", None))


def _load_kinds(registry: Registry[Any]) -> None:
    """Each module of :mod:`xferlab.kinds` defines one ``KIND`` record."""
    for module in discover("xferlab.kinds", "KIND"):
        registry.register(module.KIND.name, module.KIND, help=module.KIND.help)


# The project's registries. Datasets and kinds are declared by their own modules and
# found on first use; models and report tables are registered with lazy "module:attr"
# targets (xferlab.catalog, xferlab.report), so listing names never imports a framework.
DATASETS: Registry[Any] = Registry("dataset", loader=_load_datasets)
MODELS: Registry[Any] = Registry("model")
TABLES: Registry[Any] = Registry("table")
KINDS: Registry[Any] = Registry("kind", loader=_load_kinds)
