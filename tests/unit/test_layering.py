"""The package layering of ../shared/spec/DESIGN.md, read from the source with ``ast``.

DESIGN.md: "Data flows one way: data -> v2s|at -> tracking -> tuning -> report. Training
code never imports mlflow or optuna [...] TensorFlow is never imported in a PyTorch run
and vice versa". Each rule below is one row of RULES (who imports, what is forbidden,
where it counts, why); a module's package is its first component under xferlab
(``xferlab.v2s.train`` -> ``v2s``, ``xferlab.runner`` -> ``runner``). Scope
``module`` means statements run at import (``if TYPE_CHECKING:`` blocks and function
bodies excepted); ``anywhere`` also counts imports inside functions. No module is imported.
The last tests feed synthetic sources to the same checker, so a rule is shown to fail.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
MODEL_FRAMEWORKS = ("tensorflow", "keras", "kapre", "torch", "torchaudio")


class Rule(NamedTuple):
    name: str
    importers: tuple[str, ...]  # packages the rule applies to; "*" = every package ...
    exempt: tuple[str, ...]     # ... except these
    forbidden: tuple[str, ...]  # module prefixes ("torch" forbids torch and torch.nn, not torchvision)
    scope: str                  # "module" or "anywhere"
    reason: str


RULES = [
    Rule("mlflow-only-in-tracking", ("*",), ("tracking",), ("mlflow",), "anywhere",
         "tracking is the only package that imports mlflow"),
    Rule("optuna-only-in-tuning", ("*",), ("tuning",), ("optuna",), "anywhere",
         "tuning is the only package that imports optuna"),
    Rule("data-without-frameworks", ("data",), (), MODEL_FRAMEWORKS, "module",
         "data loads without TensorFlow or PyTorch (import them lazily)"),
    Rule("training-below-tracking", ("v2s", "at"), (),
         ("xferlab.tracking", "xferlab.tuning", "xferlab.report", "xferlab.runner"), "anywhere",
         "training code takes epoch-end callbacks; it never calls the layers above it"),
    Rule("v2s-tensorflow-only", ("v2s",), (), ("torch", "torchaudio"), "anywhere",
         "no PyTorch in a TensorFlow run"),
    Rule("at-pytorch-only", ("at",), (), ("tensorflow", "keras", "kapre"), "anywhere",
         "no TensorFlow in a PyTorch run"),
    Rule("report-without-tuning", ("report",), (), ("xferlab.tuning",), "anywhere",
         "the report reads tuning results from MLflow runs, not from the tuner"),
    Rule("jobs-without-runner", ("jobs",), (), ("xferlab.runner",), "anywhere",
         "the runner calls jobs, not the reverse"),
]


def module_sources(root: Path = SRC) -> dict[str, str]:
    """Dotted module name -> source, for every .py under src/xferlab."""
    out = {}
    for path in sorted((root / "xferlab").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path.read_text(encoding="utf-8")
    return out


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "xferlab"


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def imports(module: str, source: str, scope: str, known: set[str]) -> list[tuple[ast.stmt, str]]:
    """(statement, absolute target) for each import of ``source`` in ``scope``. ``from pkg
    import name`` targets ``pkg.name`` when that is a known module, else ``pkg``."""
    is_package = module == "xferlab" or any(k.startswith(module + ".") for k in known)  # an __init__
    package = module if is_package else module.rpartition(".")[0]
    found, stack = [], list(ast.parse(source).body)
    while stack:
        node = stack.pop()
        if scope == "module" and (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                                  or _is_type_checking(node)):
            if _is_type_checking(node):
                stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found += [(node, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            found += [(node, f"{base}.{a.name}" if f"{base}.{a.name}" in known else base) for a in node.names]
        stack.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))
    return sorted(found, key=lambda pair: (pair[0].lineno, pair[1]))


def violations(rule: Rule, module: str, source: str, known: set[str]) -> list[str]:
    pkg = package_of(module)
    if pkg in rule.exempt or not ("*" in rule.importers or pkg in rule.importers):
        return []
    return [f"{module}:{node.lineno} `{ast.unparse(node)}` -> {target} breaks {rule.name} ({rule.scope}: {rule.reason})"
            for node, target in imports(module, source, rule.scope, known)
            if any(target == f or target.startswith(f + ".") for f in rule.forbidden)]


def cycles(sources: dict[str, str]) -> list[list[str]]:
    """Strongly connected components (> 1 module) of the module-level import graph."""
    known = set(sources)
    return strongly_connected({m: sorted({t for _, t in imports(m, s, "module", known) if t in known and t != m})
                               for m, s in sources.items()})


def strongly_connected(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Components of more than one node of a directed graph (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = [stack.pop()]
            while component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


SOURCES = module_sources()


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_rule(rule: Rule) -> None:
    bad = [v for m, s in SOURCES.items() for v in violations(rule, m, s, set(SOURCES))]
    assert not bad, "\n".join(bad)


def test_no_module_level_import_cycles() -> None:
    found = cycles(SOURCES)
    assert not found, "import circles at module level:\n" + "\n".join(" <-> ".join(c) for c in found)


# --- the checker itself: each rule reports a synthetic offender, and allows what it should.
BY_NAME = {r.name: r for r in RULES}
FAILS = [
    ("mlflow-only-in-tracking", "xferlab.v2s.bad", "def f():\n    import mlflow.keras\n"),
    ("optuna-only-in-tuning", "xferlab.report.bad", "from optuna.trial import Trial\n"),
    ("data-without-frameworks", "xferlab.data.bad", "try:\n    import torch\nexcept ImportError:\n    pass\n"),
    ("training-below-tracking", "xferlab.at.bad", "def f():\n    from ..tracking import runs\n"),
    ("training-below-tracking", "xferlab.v2s.bad", "from xferlab import runner\n"),
    ("v2s-tensorflow-only", "xferlab.v2s.bad", "import torch\n"),
    ("at-pytorch-only", "xferlab.at.bad", "def f():\n    from keras import layers\n"),
    ("report-without-tuning", "xferlab.report.bad", "from xferlab.tuning.summary import x\n"),
    ("jobs-without-runner", "xferlab.jobs.bad", "def f():\n    from .. import runner\n"),
]
ALLOWED = [
    ("mlflow-only-in-tracking", "xferlab.tracking.ok", "import mlflow\n"),
    ("data-without-frameworks", "xferlab.data.ok", "def f():\n    import torch\n"),
    ("data-without-frameworks", "xferlab.data.ok",
     "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import tensorflow as tf\n"),
    ("v2s-tensorflow-only", "xferlab.v2s.ok", "import tensorflow as tf\nfrom kapre import STFT\n"),
]


@pytest.mark.parametrize("name, module, source", FAILS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(FAILS)])
def test_checker_reports(name: str, module: str, source: str) -> None:
    assert violations(BY_NAME[name], module, source, set(SOURCES) | {module})


@pytest.mark.parametrize("name, module, source", ALLOWED, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(ALLOWED)])
def test_checker_allows(name: str, module: str, source: str) -> None:
    assert not violations(BY_NAME[name], module, source, set(SOURCES) | {module})


def test_checker_finds_a_cycle_and_ignores_lazy_and_type_checking_imports() -> None:
    fake = {"xferlab.a": "from xferlab import b\n", "xferlab.b": "import xferlab.c\n", "xferlab.c": "from . import a\n",
            "xferlab.d": "def f():\n    import xferlab.e\n", "xferlab.e": "if TYPE_CHECKING:\n    import xferlab.d\n"}
    assert cycles(fake) == [["xferlab.a", "xferlab.b", "xferlab.c"]]
