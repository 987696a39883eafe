"""The report's place in the layers, read from the source (no imports of the modules checked).

Why these checks: an import circle makes the import order matter (a module half-built
when another asks for its names), and a lower layer that imports the report pulls pandas
and matplotlib into places that must stay light (``xferlab list``, spec checks). The rules
(the architecture issue): no module-level import circle through the report; inside
the report not even through imports in functions or the tables registry's lazy targets;
the report never imports ``xferlab.tuning`` or optuna; the root catalogue and registry
never import the report.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import xferlab
from xferlab.registry import Registry, TABLES
from xferlab.report.items import item_names

PACKAGE = Path(xferlab.__file__).parent
REPORT = "xferlab.report"
FORBIDDEN = re.compile(r"(xferlab\.tuning|optuna)(\.\w+)*(:\w+)?")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the xferlab package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = module_files()


def _statements(tree: ast.AST, module_level: bool) -> list[ast.AST]:
    """Every node, or (module_level) every node not inside a function body (those run at import:
    ``if TYPE_CHECKING:`` blocks, try/except, class bodies)."""
    nodes, stack = [], list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if module_level and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        nodes.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return nodes


def imported(name: str, module_level: bool) -> set[str]:
    """Absolute names ``name`` imports; ``from pkg import mod`` counts as importing ``pkg.mod``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _statements(ast.parse(path.read_text(encoding="utf-8")), module_level):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            out |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return out


def graph(names: list[str], module_level: bool) -> dict[str, set[str]]:
    """Import edges among ``names`` only."""
    return {n: {m for m in imported(n, module_level) if m in names and m != n} for n in names}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (the layering test's Tarjan)."""
    from tests.unit.test_layering import strongly_connected

    return strongly_connected(edges)


def report_modules() -> list[str]:
    return sorted(n for n in MODULES if n == REPORT or n.startswith(REPORT + "."))


def test_no_module_level_cycle_runs_through_the_report():
    """Over the whole package (``if TYPE_CHECKING:`` imports count: they are a circle in the
    source all the same). Circles elsewhere belong to their own modules' tests."""
    through = [c for c in cycles(graph(sorted(MODULES), module_level=True))
               if any(m == REPORT or m.startswith(REPORT + ".") for m in c)]
    assert through == []


def test_report_has_no_cycles_even_through_lazy_imports_and_registry_targets():
    names = report_modules()
    edges = graph(names, module_level=False)
    edges[f"{REPORT}.build"] |= {TABLES.get(n).__module__ for n in item_names()}  # build resolves the items
    assert cycles(edges) == []


def test_graph_finds_a_cycle():
    """The checker itself: build -> html -> build (the circle this layout removed) is found."""
    edges = {"build": {"html", "query"}, "html": {"build"}, "query": set()}
    assert cycles(edges) == [["build", "html"]]


def test_report_never_imports_tuning_or_optuna():
    """Also inside functions and as lazy "module:attr" strings: tuning data reaches the
    report through the MLflow runs the tuner writes, never through Optuna."""
    bad = []
    for name in report_modules():
        tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
        strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        names = imported(name, module_level=False) | {s for s in strings if FORBIDDEN.fullmatch(s)}
        bad += [f"{name} -> {m}" for m in names if FORBIDDEN.fullmatch(m)]
    assert bad == []


def test_root_catalog_and_registry_never_import_the_report():
    for name in ("xferlab.catalog", "xferlab.registry"):
        assert not [m for m in imported(name, module_level=False) if m == REPORT or m.startswith(REPORT + ".")], name


def test_item_registration_is_light():
    """``xferlab list tables`` imports the registration module: no pandas, matplotlib or MLflow."""
    code = ("import sys, xferlab.report.items as items; assert items.item_names(); "
            "print(sorted(m for m in ('pandas', 'matplotlib', 'mlflow', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_in_order_keeps_registration_order_where_names_sorts():
    reg: Registry[object] = Registry("thing")
    for name in ("zeta", "alpha/", "mid"):
        reg.register(name, object(), help=name)
    assert reg.names() == ["alpha/*", "mid", "zeta"]
    assert reg.in_order() == ["zeta", "alpha/*", "mid"]
    assert reg.in_order("*a") == ["zeta"]


def test_items_are_registered_in_the_page_order_with_their_titles():
    names = item_names()
    assert names[:3] == ["claims", "v2s_table2", "v2s_significance"] and names[-1] == "tuning"
    assert names != sorted(names)  # the page's order, not the alphabet
    assert all(TABLES.help(n) for n in names)
