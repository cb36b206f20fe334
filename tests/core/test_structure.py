"""The package's shape: no import circles between modules or between packages (imports inside
functions count), the CLI and the commands on top of everything, no package reaching into
another's private names, and short functions and modules."""

from __future__ import annotations

import ast
from pathlib import Path

import brushwork

PACKAGE = Path(brushwork.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def from_imports(path: Path, modules: set[str]) -> list[tuple[str, str]]:
    """(module, name) of every `from X import name` in `path` whose X is a brushwork module, at
    the top or inside a function; relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found += [(base, alias.name) for alias in node.names if base in modules]
    return found


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every brushwork module that `path` imports, at the top or inside a function."""
    found = {alias.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Import)
             for alias in node.names if alias.name in modules}
    for base, alias in from_imports(path, modules):  # `from . import images` imports the module brushwork.images
        target = f"{base}.{alias}"
        found.add(target if target in modules else base)
    return {m for m in found if m in modules and m != module_name(path)}


def top_level_imports(path: Path) -> set[str]:
    """The first part of every absolute module name `path` imports: argparse, ray, torch, ..."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [node])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [])):
            return cycle
    return None


def package_of(module: str) -> str:
    """The unit a package-level circle is made of: a subpackage (brushwork.compare, with all
    its modules), or a module of the top level (brushwork.engine) on its own."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() else module


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The import graph with modules collapsed into their packages; a package's own modules
    importing each other is no circle."""
    packages: dict[str, set[str]] = {}
    for module, deps in graph.items():
        packages.setdefault(package_of(module), set()).update(package_of(d) for d in deps)
    return {name: deps - {name} for name, deps in packages.items()}


def below_the_commands(module: str) -> bool:
    return module != "brushwork.cli" and not module.startswith("brushwork.commands")


def test_no_import_circles():
    graph = import_graph()
    assert "brushwork.engine" in graph and graph["brushwork.cli"], "the walk found the package"
    assert find_cycle(graph) is None, f"import circle: {' -> '.join(find_cycle(graph))}"


def test_no_import_circles_between_packages():
    """compare -> cluster -> compare was one, hidden behind imports inside functions."""
    graph = package_graph(import_graph())
    assert {"brushwork.compare", "brushwork.batch", "brushwork.commands", "brushwork.engine"} <= set(graph)
    assert find_cycle(graph) is None, f"import circle between packages: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    across = {"brushwork.compare.grid": {"brushwork.cluster"}, "brushwork.cluster": {"brushwork.compare.report"},
              "brushwork.compare.report": set()}
    assert find_cycle(across) is None and find_cycle(package_graph(across)) is not None


def test_nothing_imports_the_cli():
    importers = [name for name, deps in import_graph().items() if "brushwork.cli" in deps]
    assert importers == []


def test_only_the_commands_parse_arguments_and_choose_the_cluster():
    """Libraries take values, not command lines; Ray stays a runner that a command picks."""
    paths = sorted(PACKAGE.rglob("*.py"))
    graph = import_graph()
    parsers = [module_name(p) for p in paths if below_the_commands(module_name(p)) and "argparse" in top_level_imports(p)]
    assert parsers == []
    assert "brushwork.cluster" in graph["brushwork.commands.compare"], "the walk sees the commands' lazy imports"
    reaching = [name for name, deps in graph.items() if below_the_commands(name) and "brushwork.cluster" in deps]
    assert reaching == []


def home_package(module: str) -> str:
    """The package a module belongs to: brushwork.compare for brushwork.compare.grid and for
    brushwork.compare itself, brushwork for brushwork.engine."""
    return module if PACKAGE.parent.joinpath(*module.split(".")).is_dir() else module.rsplit(".", 1)[0]


def test_no_package_imports_another_packages_private_names():
    """A leading underscore means "this package's business": others go through public names."""
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    private = [
        f"{module_name(p)} imports {base}.{name}"
        for p in paths for base, name in from_imports(p, modules)
        if name.startswith("_") and not name.startswith("__") and home_package(base) != home_package(module_name(p))
    ]
    assert private == []


def test_the_package_exports_the_engine_and_options():
    from brushwork.engine import Engine
    from brushwork.options import Options

    assert brushwork.Engine is Engine and brushwork.Options is Options


def test_functions_and_modules_stay_short():
    """One job per function (at most 60 lines) and modules a reader can take in (450 lines)."""
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        if len(source.splitlines()) > 450:
            too_long.append(f"{module_name(path)}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                too_long.append(f"{module_name(path)}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert too_long == []


def test_the_benchmarks_import_names_that_exist():
    """Benchmarks are scripts no test runs; a moved name must still break a test, not a user."""
    import importlib

    missing = []
    for path in sorted((PACKAGE.parent / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "brushwork":
                module = importlib.import_module(node.module)
                missing += [f"{path.name}: {node.module}.{alias.name}" for alias in node.names
                            if not hasattr(module, alias.name)
                            and importlib.util.find_spec(f"{node.module}.{alias.name}") is None]
    assert missing == []
