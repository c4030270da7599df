"""The package reads top to bottom: short functions, imports that only point down.

Checked with ``ast`` over every module under drumtx/, so a new file is covered without
being listed. Imports inside functions count: they are still dependencies.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "drumtx"
MAX_FUNCTION_LINES = 60  # def line to last line, decorators excluded


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def long_functions(tree: ast.Module, limit: int) -> list[tuple[str, int, int]]:
    """(qualified name, first line, length) of each function longer than ``limit``."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                length = child.end_lineno - child.lineno + 1
                if length > limit:
                    found.append((name, child.lineno, length))
                name += "."
            elif isinstance(child, ast.ClassDef):
                name = f"{prefix}{child.name}."
            visit(child, name)

    visit(tree, "")
    return found


def resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from X import ...`` names (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """drumtx modules that ``module`` imports anywhere in its file (function bodies,
    ``if TYPE_CHECKING`` blocks and all).

    ``import a.b.c`` also runs the packages a and a.b, so they count too, except the
    importer's own parent packages: a package's modules importing each other is no
    dependency on the package's __init__ (``from a.b import name`` still is one).
    """
    targets: set[str] = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = resolve_from(module, path.name == "__init__.py", node)
            for alias in node.names:
                # ``from drumtx import audio`` imports the module drumtx.audio.
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in known else source)
    own_parents = {module.rsplit(".", i)[0] for i in range(1, module.count(".") + 1)}
    deps = set()
    for target in targets:
        parts = target.split(".")
        ancestors = {".".join(parts[:i]) for i in range(1, len(parts))}
        deps.update(n for n in ancestors - own_parents - {module} if n in known)
        if target in known and target != module:
            deps.add(target)
    return deps


def import_graph() -> dict[str, set[str]]:
    known = set(MODULES)
    return {m: imported_modules(m, p, known) for m, p in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None; depth-first search."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_function_longer_than_60_lines(module: str) -> None:
    too_long = long_functions(parse(MODULES[module]), MAX_FUNCTION_LINES)
    assert not too_long, [
        f"{module}.{name} (line {line}) is {length} lines"
        for name, line, length in too_long
    ]


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


# --- the checkers themselves --------------------------------------------------------


def _function(name: str, n_body_lines: int, indent: str = "") -> str:
    body = "".join(f"{indent}    x{i} = {i}\n" for i in range(n_body_lines))
    return f"{indent}def {name}():\n{body}"


def test_long_functions_counts_def_to_last_line() -> None:
    source = _function("fits", 59) + "class C:\n" + _function("method", 60, "    ")
    # fits: 60 lines; C.method: 61 lines.
    assert long_functions(ast.parse(source), 60) == [("C.method", 62, 61)]


def test_find_cycle_sees_long_and_short_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"d"}, "d": {"b"}}) == [
        "b",
        "c",
        "d",
        "b",
    ]


KNOWN = {
    "drumtx",
    "drumtx.audio",
    "drumtx.errors",
    "drumtx.cli",
    "drumtx.midi",
    "drumtx.synth",
    "drumtx.synth.dsp",
    "drumtx.synth.voices",
}


def test_function_local_imports_count(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from drumtx import audio, errors as e\n"
        "def f():\n"
        "    from drumtx.cli import main\n"
        "    import drumtx.synth.voices\n"
        "    from . import midi\n"
    )
    deps = imported_modules("drumtx.m", source, KNOWN)
    assert deps == KNOWN - {"drumtx", "drumtx.synth.dsp"}  # drumtx: m's own package


def test_a_package_module_does_not_depend_on_its_own_init(tmp_path: Path) -> None:
    source = tmp_path / "voices.py"
    source.write_text("from drumtx.synth.dsp import noise\n")
    assert imported_modules("drumtx.synth.voices", source, KNOWN) == {
        "drumtx.synth.dsp"
    }
    source.write_text("from drumtx.synth import SynthKit\n")  # the __init__ itself
    assert imported_modules("drumtx.synth.voices", source, KNOWN) == {"drumtx.synth"}
