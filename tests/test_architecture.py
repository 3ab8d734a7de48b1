"""The package's shape: no import cycles, no imports against the layering, short functions.

Read from the source with `ast` (nothing is imported). Imports under `if TYPE_CHECKING:` are
annotations only and do not count; imports inside functions do.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "bankmarketing"
MAGE = Path(__file__).resolve().parents[1] / "mlops"
#: Beyond this, a function needs a reason in its docstring ("Longer than 80 lines ...").
MAX_FUNCTION_LINES = 80

#: Layers that must not reach up: a module under the key imports nothing under these prefixes.
FORBIDDEN = {
    "bankmarketing.data": ["monitoring", "training", "serving", "deployment", "retrain", "alerts"],
    "bankmarketing.predictions": [
        "monitoring",
        "training",
        "serving",
        "deployment",
        "retrain",
        "data.prepare",
    ],
    "bankmarketing.scoring": ["monitoring", "serving", "deployment", "retrain", "training.train"],
    "bankmarketing.serving": ["monitoring", "training.train", "deployment", "retrain", "alerts", "ui"],
    "bankmarketing.monitoring": ["training.train", "serving", "deployment", "retrain", "alerts.app", "ui"],
    "bankmarketing.training": ["serving", "deployment", "retrain", "alerts", "ui", "monitoring.monitor"],
    "bankmarketing.ui": [
        "serving.app",
        "serving.predictor",
        "serving.model_holder",
        "monitoring",
        "training",
        "deployment",
        "retrain",
        "alerts",
    ],
}


def _module_name(path: Path) -> str:
    parts = ("bankmarketing", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts).removesuffix(".__init__")


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py") if "migrations" not in p.parts}


def _annotation_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports under `if TYPE_CHECKING:`."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lines |= {n.lineno for child in node.body for n in ast.walk(child)}
    return lines


def import_graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports at run time."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        skipped = _annotation_only(tree)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skipped:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bankmarketing"):
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 50 and sum(map(len, graph.values())) > 150  # the graph was read
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_against_the_layering():
    against = [
        f"{name} imports {target}"
        for name, targets in import_graph().items()
        for layer, forbidden in FORBIDDEN.items()
        if name == layer or name.startswith(f"{layer}.")
        for target in sorted(targets)
        if any(target.startswith(f"bankmarketing.{prefix}") for prefix in forbidden)
    ]
    assert against == []


def _long_functions(paths) -> list[str]:
    long = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                reason = "Longer than 80 lines" in (ast.get_docstring(node) or "")
                if lines > MAX_FUNCTION_LINES and not reason:
                    long.append(
                        f"{path.relative_to(SRC.parents[1])}:{node.lineno} {node.name} ({lines} lines)"
                    )
    return long


@pytest.mark.parametrize("folder", [SRC, MAGE], ids=["package", "mage"])
def test_every_function_is_at_most_80_lines_or_says_why(folder):
    paths = [p for p in folder.rglob("*.py") if ".file_versions" not in p.parts]
    assert paths
    assert _long_functions(paths) == []
