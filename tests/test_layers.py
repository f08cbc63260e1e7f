"""The package's layering: no import cycle among its modules, and every config field is a
CLI flag (one owner per fact: the dataclasses)."""

import ast
import dataclasses
from pathlib import Path

from jax_anomaly.cli import MODEL_DEST, build_parser
from jax_anomaly.config import DataConfig, TrainConfig, field_docs
from jax_anomaly.detectors import registry

PACKAGE = Path(__file__).resolve().parents[1] / "jax_anomaly"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (at any depth of the file, lazy ones too)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jax_anomaly"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    edges.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
        graph[name] = edges - {name}
    return graph


def test_no_import_cycle():
    graph = import_graph()
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [])


def test_import_graph_sees_imports():
    graph = import_graph()
    assert "jax_anomaly.fitting" in graph["jax_anomaly.estimators"]
    assert "jax_anomaly.detectors.base" in graph["jax_anomaly.detectors.anogan"]


def test_every_config_field_is_a_flag_with_its_docstring_as_help():
    actions = {a.dest: a for a in build_parser()._subparsers._group_actions[0].choices["run"]._actions}
    for cls in (TrainConfig, DataConfig):
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            if f.name in ("checkpoint", "synthetic"):  # set by the runner / a dict: no flag
                continue
            assert f.name in actions, f"{cls.__name__}.{f.name} has no flag"
            assert docs[f.name].split()[0] in actions[f.name].help
    for det in registry().values():
        for f in dataclasses.fields(det.config_cls):
            action = actions[MODEL_DEST + f.name]
            assert action.default is None and det.name in action.help, (det.name, f.name)
    assert "fpr:A" in actions["threshold"].help
    assert {"--learning-rate", "--lr"} <= set(actions["learning_rate"].option_strings)
    assert (
        actions[MODEL_DEST + "lam"].option_strings == ["--lambda"]
        and "--unroll" in actions["unroll"].option_strings
    )
