"""The package's layers (docs/design.md, "Layers"), asserted from the source's imports.

Every module's ``import`` statements are read with :mod:`ast` (module level and inside
functions; relative imports resolved), and the installed module names are derived from the
source folders the way pyproject's ``package-dir`` maps them (``envs/`` is
``keypoint_wm.envs`` ...). Three rules:

(a) no import circle among module-level imports;
(b) every import points to the same layer or one below it; the only upward import is the
    lazy re-export of ``keypoint_wm.api`` in ``keypoint_wm/__init__.py``;
(c) the core (everything but ``envs/``, ``collect/`` and ``cli/``) never imports gymnasium,
    dm_control or stable_baselines3, not even lazily.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = {
    "keypoint_wm": REPO / "keypoint_wm",
    "keypoint_wm.envs": REPO / "envs",
    "keypoint_wm.collect": REPO / "collect",
    "keypoint_wm.rewards": REPO / "rewards",
}

# Bottom to top. An entry names a module or a package (then it covers every module below it,
# unless a longer entry is more specific: ``envs.latent`` sits above ``envs``).
LAYERS: list[tuple[str, ...]] = [
    (
        "keypoint_wm",
        "errors",
        "choices",
        "conventions",
        "latent_features",
        "reward_inputs",
        "claims",
        "stop_signals",
        "host_memory",
        "differences",
        "config",
        "model",
    ),
    ("data",),
    ("checkpoint", "run_groups", "summaries", "viz", "api", "bundled", "presets"),
    ("evaluation", "rewards"),
    ("train", "train_step", "train_resume", "replicas", "benchmark"),
    ("collect", "envs"),
    # envs/benchmark.py times the latent wrapper against the bare env: it sits with the wrapper,
    # and so does envs/agents/ (agents on the latent state and in the dream env).
    ("envs.latent", "envs.benchmark", "envs.agents"),
    # reproduce runs every command as a unit and writes the results pages: the top.
    ("cli", "reproduce"),
]
ALLOWED_UPWARD = {("keypoint_wm", "keypoint_wm.api")}
NOT_CORE = ("keypoint_wm.envs", "keypoint_wm.collect", "keypoint_wm.cli")
GYM_SIDE = ("gymnasium", "dm_control", "stable_baselines3")


@dataclass(frozen=True)
class Import:
    """One imported module as the importing module sees it."""

    source: str  # the importing module
    target: str  # an imported module (third-party names kept as written)
    line: int
    module_level: bool  # False inside a function or under ``if TYPE_CHECKING:``


def _module_name(package: str, root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _source_files() -> dict[str, Path]:
    files = {}
    for package, root in SOURCE_DIRS.items():
        for path in sorted(root.rglob("*.py")):
            files[_module_name(package, root, path)] = path
    return files


MODULES = _source_files()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_of(module: str, path: Path) -> list[Import]:
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def resolve(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        return ".".join(base + ([node.module] if node.module else []))

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append(Import(module, alias.name, child.lineno, module_level))
            elif isinstance(child, ast.ImportFrom):
                base = resolve(child)
                for alias in child.names:
                    name = f"{base}.{alias.name}"
                    target = name if name in MODULES else base
                    found.append(Import(module, target, child.lineno, module_level))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                visit(child, False)
            else:
                visit(child, module_level)

    visit(ast.parse(path.read_text(), filename=str(path)), True)
    return found


IMPORTS = [imp for module, path in MODULES.items() for imp in _imports_of(module, path)]
INTERNAL = [imp for imp in IMPORTS if imp.target in MODULES and imp.target != imp.source]


def layer_of(module: str) -> int | None:
    """Index in :data:`LAYERS` of the most specific entry covering ``module``."""
    best: tuple[int, int] | None = None  # (length of the entry's name, layer)
    for number, entries in enumerate(LAYERS):
        for entry in entries:
            name = entry if entry == "keypoint_wm" else f"keypoint_wm.{entry}"
            covers = module == name or (entry != "keypoint_wm" and module.startswith(name + "."))
            if covers and (best is None or len(name) > best[0]):
                best = (len(name), number)
    return None if best is None else best[1]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return components


def test_the_reader_sees_the_packages_and_their_imports() -> None:
    # Guards the rules below against passing on an empty or misread tree.
    for module in ("keypoint_wm.api", "keypoint_wm.envs.dmc", "keypoint_wm.rewards.head"):
        assert module in MODULES
    assert any(
        imp.source == "keypoint_wm" and imp.target == "keypoint_wm.api" and not imp.module_level
        for imp in IMPORTS
    ), "the lazy api re-export in keypoint_wm/__init__.py was not seen"
    assert any(imp.source.startswith("keypoint_wm.envs") for imp in INTERNAL)


def test_cycle_finder_finds_a_circle_and_only_the_circle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]
    assert layer_of("keypoint_wm.envs.latent.wrapper") == layer_of("keypoint_wm.envs.latent")
    assert layer_of("keypoint_wm.envs.dmc") == layer_of("keypoint_wm.collect.runner")


def test_every_module_has_a_layer() -> None:
    missing = sorted(module for module in MODULES if layer_of(module) is None)
    assert not missing, f"modules missing from LAYERS (docs/design.md, 'Layers'): {missing}"


def test_no_import_circle() -> None:
    edges: dict[str, set[str]] = {}
    for imp in INTERNAL:
        if imp.module_level:
            edges.setdefault(imp.source, set()).add(imp.target)
    assert _cycles(edges) == [], "module-level import circles"


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{MODULES[imp.source].relative_to(REPO)}:{imp.line}: {imp.source} "
        f"(layer {layer_of(imp.source)}) imports {imp.target} (layer {layer_of(imp.target)})"
        for imp in INTERNAL
        if (layer_of(imp.source) or 0) < (layer_of(imp.target) or 0)
        and (imp.source, imp.target) not in ALLOWED_UPWARD
    ]
    assert not upward, "imports pointing up the layers:\n" + "\n".join(upward)


@pytest.mark.parametrize("library", GYM_SIDE)
def test_core_never_imports_the_gym_side(library: str) -> None:
    offending = [
        f"{MODULES[imp.source].relative_to(REPO)}:{imp.line}: {imp.target}"
        for imp in IMPORTS
        if not imp.source.startswith(NOT_CORE)
        and (imp.target == library or imp.target.startswith(library + "."))
    ]
    assert not offending, f"core modules importing {library}:\n" + "\n".join(offending)


def test_every_package_folder_is_installed() -> None:
    """A wheel holds only the packages pyproject lists: every folder with an ``__init__.py``
    under the source folders is one of them (``keypoint_wm.reproduce`` once was not)."""
    import tomllib

    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = set()
    for root, folder in SOURCE_DIRS.items():
        for init in folder.rglob("__init__.py"):
            parts = init.parent.relative_to(folder).parts
            found.add(".".join((root, *parts)))
    assert found - listed == set(), (
        f"pyproject.toml [tool.setuptools] packages lacks {found - listed}"
    )


def test_no_import_circle_through_lazy_imports_either() -> None:
    """An import inside a function delays a circle, it does not remove it: a module and the
    one it imports lazily must not import each other (the lazy api re-export of
    ``keypoint_wm/__init__.py`` excepted)."""
    edges: dict[str, set[str]] = {}
    for imp in INTERNAL:
        if (imp.source, imp.target) not in ALLOWED_UPWARD:
            edges.setdefault(imp.source, set()).add(imp.target)
    assert _cycles(edges) == [], "import circles, counting imports inside functions"
