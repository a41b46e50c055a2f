"""The package's layers: imports point one way, there is no cycle, and the public API is the top level."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import exporter

PACKAGE = Path(exporter.__file__).resolve().parent

# Which layers each layer may import from (its own included). `top` is the package's __init__/__main__.
ALLOWED = {
    "core": {"core"},
    "sources": {"core", "sources"},
    "web": {"core", "web"},
    "demo": {"core", "sources", "service", "demo"},
    "service": {"core", "sources", "web", "service"},
    "config": {"core", "config"},
    "rollout": {"core", "sources", "config", "rollout"},
    "cli": {"core", "sources", "web", "demo", "service", "config", "rollout", "cli"},
    "top": {"core", "web", "service", "cli", "top"},
}
NOT_IN_CORE = ("prometheus_client", "requests", "krakenex", "socket", "http", "urllib", "wsgiref")
PUBLIC_API = (
    "CapacityTelemetry", "CapacityExporter", "ManualClock", "SystemClock", "AcceleratedClock",
    "add_capacity_fill_health", "status_payload", "create_app", "start_server", "evaluate",
    "CapacityInputs", "CapacityFillHealth", "WebConfigFile", "WebConfigError", "HttpSettings", "RunningServer",
)


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__",):
        return "top"
    return parts[1]


def imports_of(path: Path, package_dir: Path = PACKAGE) -> tuple[set[str], set[str]]:
    """(modules of this package imported, outside top-level packages imported) by one file."""
    me = module_name(path, package_dir)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    inside, outside = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            inside.add(target)
            if not node.module:  # `from . import x`: x may be a module
                inside.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            (inside if node.module.split(".")[0] == "exporter" else outside).add(node.module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                (inside if alias.name.split(".")[0] == "exporter" else outside).add(alias.name)
    return {m for m in inside if m != me}, {m.split(".")[0] for m in outside}


def package_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        inside, _ = imports_of(path)
        graph[name] = {m for m in inside if m in files}
    return graph


def imports_against_the_layers(package_dir: Path) -> list[str]:
    wrong = []
    for path in package_dir.rglob("*.py"):
        me = module_name(path, package_dir)
        inside, _ = imports_of(path, package_dir)
        wrong += [f"{me} imports {target}" for target in sorted(inside) if layer(target) not in ALLOWED[layer(me)]]
    return wrong


def test_every_import_points_down_the_layers():
    assert imports_against_the_layers(PACKAGE) == []


def test_the_core_does_no_io_and_uses_no_network_library():
    wrong = []
    for path in (PACKAGE / "core").rglob("*.py"):
        _, outside = imports_of(path)
        wrong += [f"{module_name(path)} imports {m}" for m in sorted(outside & set(NOT_IN_CORE))]
    assert wrong == []


def test_no_module_imports_itself_through_a_cycle():
    graph = package_graph()
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == path[0]:
                cycles.append(" -> ".join([*path, nxt]))
            elif nxt not in path and len(path) < len(graph):
                visit(nxt, [*path, nxt])

    for start in graph:
        if start != "exporter":  # the package __init__ re-exports; it is imported by nothing inside
            visit(start, [start])
    assert cycles == []


def test_the_layer_check_reports_a_core_module_that_imports_the_web_layer(tmp_path):
    fake = tmp_path / "exporter"
    (fake / "core").mkdir(parents=True)
    (fake / "web").mkdir()
    for init in (fake / "__init__.py", fake / "core" / "__init__.py", fake / "web" / "__init__.py"):
        init.write_text("")
    (fake / "web" / "app.py").write_text("X = 1\n")
    (fake / "core" / "clock.py").write_text("from ..web.app import X\n")
    assert imports_against_the_layers(fake) == ["exporter.core.clock imports exporter.web.app"]


def test_the_public_api_is_complete_and_importable_from_the_top_level():
    assert set(PUBLIC_API) <= set(exporter.__all__)
    for name in exporter.__all__:
        assert getattr(importlib.import_module("exporter"), name) is not None, name
    assert isinstance(exporter.__version__, str)


def test_the_docs_layout_table_names_every_file_of_the_package_and_nothing_else():
    development = (PACKAGE.parent / "docs" / "development.md").read_text()
    table = development[development.index("## Layout"):]
    named = {word.strip("`") for word in table.split() if word.startswith("`exporter/") and not word.endswith("/`")}
    named = {n.rstrip("`,") for n in named}
    # issue 18's module is named in docs/order-rate.md's "Code" section (README is being rewritten meanwhile)
    rate_doc = (PACKAGE.parent / "docs" / "order-rate.md").read_text()
    named |= {w.strip("`,.") for w in rate_doc[rate_doc.index("## Code"):].split() if w.startswith("`exporter/")}
    on_disk = {str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*")
               if p.suffix in (".py", ".html") and not (p.name == "__init__.py" and p.parent != PACKAGE)}
    assert named == on_disk
