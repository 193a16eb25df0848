"""The house's floor plan, checked: no import circles, no private name borrowed from another
module, what one package takes from another is listed in that module's `__all__`, and no core
module spells out a set of channel names (the channel registry is the only list)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_PACKAGES = ("broadcaster", "channels")


@dataclass(frozen=True, slots=True)
class Import:
    importer: str  # dotted module name
    target: str  # the project module imported from
    names: tuple[str, ...]  # the names taken from it ("" for `import target`)
    line: int


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in TOP_PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            found[_module_name(path)] = path
    return found


@cache
def _tree(module: str) -> ast.Module:
    return ast.parse(_modules()[module].read_text(encoding="utf-8"))


def _package_of(module: str) -> str:
    """`broadcaster.delivery.outbox` → `broadcaster.delivery`; a package is its own package."""
    path = _modules()[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str) -> Iterator[Import]:
    modules = _modules()
    package = _package_of(module)
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield Import(module, alias.name, ("",), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            if source not in modules:
                continue
            taken: list[str] = []
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in modules:  # `from broadcaster.delivery import outbox`
                    yield Import(module, submodule, ("",), node.lineno)
                else:
                    taken.append(alias.name)
            if taken:
                yield Import(module, source, tuple(taken), node.lineno)


def _all_imports() -> list[Import]:
    return [i for module in _modules() for i in _imports(module)]


def _declared_all(module: str) -> set[str] | None:
    for node in _tree(module).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id == "__all__":
                value = node.value
                assert isinstance(value, (ast.List, ast.Tuple)), f"{module}: __all__ must be a literal list"
                return {
                    e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
                }
    return None


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back_through_others() -> None:
    edges: dict[str, set[str]] = {}
    for i in _all_imports():
        if i.target != i.importer:
            edges.setdefault(i.importer, set()).add(i.target)
    assert _circles(edges) == []


def test_no_private_name_is_taken_from_another_module() -> None:
    borrowed = [
        f"{_modules()[i.importer].relative_to(ROOT)}:{i.line}: {name} from {i.target}"
        for i in _all_imports()
        for name in i.names
        if name.startswith("_") and i.target != i.importer
    ]
    assert borrowed == []


def test_what_a_package_takes_from_another_is_in_that_modules_all() -> None:
    missing: list[str] = []
    for i in _all_imports():
        if _package_of(i.importer) == _package_of(i.target) or i.names == ("",):
            continue
        public = _declared_all(i.target)
        for name in i.names:
            if public is None or name not in public:
                where = _modules()[i.importer].relative_to(ROOT)
                missing.append(f"{where}:{i.line}: {name} is not in {i.target}.__all__")
    assert missing == []


def test_every_all_names_only_what_its_module_defines_or_imports() -> None:
    wrong: list[str] = []
    for module in _modules():
        public = _declared_all(module)
        if public is None:
            continue
        tree = _tree(module)
        bound: set[str] = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                bound.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    names = target.elts if isinstance(target, ast.Tuple) else [target]
                    bound.update(n.id for n in names if isinstance(n, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                bound.add(node.target.id)
            elif isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports
                for inner in node.body:
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        bound.update((a.asname or a.name).split(".")[0] for a in inner.names)
        wrong.extend(f"{module}.__all__ names {name}, which it does not bind" for name in public - bound)
    assert wrong == []


def test_no_core_module_spells_out_a_set_of_channel_names() -> None:
    from channels.registry import CHANNEL_NAMES

    names = set(CHANNEL_NAMES)
    spelled: list[str] = []
    for module, path in _modules().items():
        if not module.startswith("broadcaster."):
            continue
        for node in ast.walk(_tree(module)):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                items = node.elts
            elif isinstance(node, ast.Dict):
                items = [k for k in node.keys if k is not None]
            else:
                continue
            literal = {e.value for e in items if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if len(literal & names) >= 2:
                spelled.append(f"{path.relative_to(ROOT)}:{node.lineno}: {sorted(literal & names)}")
    assert spelled == []


def test_the_channels_take_from_the_core_only_the_message_and_text_folding() -> None:
    allowed = ("broadcaster.message", "broadcaster.folding")  # never its configuration or database
    reaching = [
        f"{_modules()[i.importer].relative_to(ROOT)}:{i.line}: {i.target}"
        for i in _all_imports()
        if i.importer.startswith("channels")
        and i.target.startswith("broadcaster")
        and i.target not in allowed
    ]
    assert reaching == []


def test_every_channel_package_is_in_the_registry_with_its_templates() -> None:
    from channels.registry import CHANNEL_NAMES, SPECS

    packages = sorted(p.parent.name for p in (ROOT / "channels").glob("*/__init__.py"))
    assert packages == sorted(CHANNEL_NAMES)
    missing = [
        f"message_templates/{name}/{locale}/{kind}.{part}.j2"
        for name, spec in SPECS.items()
        for locale in ("fr", "en")
        for kind in ("update", "resolved")
        for part in spec.parts
        if not (ROOT / "message_templates" / name / locale / f"{kind}.{part}.j2").is_file()
    ]
    assert missing == []
