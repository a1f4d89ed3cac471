"""docs/architecture.md's "What may import what", enforced: a circle or an upward import fails here."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "neurofl"
CORE = ("neurofl.leakage", "neurofl.attacks")  # victims, rows, scoring, identification, metrics, gradients
DATA_MAY_IMPORT = ("neurofl.errors", "neurofl.config", "neurofl.io.safeio", "neurofl.io.limits", "neurofl.data",
                   "neurofl.io.atomic")  # fmt: skip


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top_level_only: bool) -> set[str]:
    """The neurofl modules ``path`` imports (only those at module level with ``top_level_only``)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("neurofl")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("neurofl") and node.level == 0:
            out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                    for a in node.names}  # fmt: skip
    return out


FILES = {_module(p): p for p in PACKAGE.rglob("*.py")}
MODULES = set(FILES)


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_core_never_imports_the_federated_engine_deployment_commands_or_the_study():
    for name, path in FILES.items():
        if _under(name, CORE):
            bad = {m for m in imports(path, False) if _under(m, ("neurofl.federated", "neurofl.deploy",
                                                                    "neurofl.commands", "neurofl.study"))}
            assert not bad, f"{name} imports {sorted(bad)}"


def test_data_imports_only_its_foundations():
    for name, path in FILES.items():
        if _under(name, ("neurofl.data",)):
            bad = {m for m in imports(path, False) if not _under(m, DATA_MAY_IMPORT)}
            assert not bad, f"{name} imports {sorted(bad)}"


def test_only_the_cli_imports_the_commands_and_models_never_import_their_factory():
    for name, path in FILES.items():
        used = imports(path, False)
        if not _under(name, ("neurofl.cli", "neurofl.commands")):
            assert not {m for m in used if _under(m, ("neurofl.commands",))}, f"{name} imports a command"
        if _under(name, ("neurofl.models",)) and name != "neurofl.models.factory" and name != "neurofl.models":
            assert "neurofl.models.factory" not in used, f"{name} imports models/factory.py"


def test_module_level_imports_form_no_circle():
    graph = {name: {m for m in imports(path, True) if m in MODULES and m != name} for name, path in FILES.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
