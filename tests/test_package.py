"""The package's shape: a small top-level API and imports that follow the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pokervod_db

PACKAGE = Path(pokervod_db.__file__).parent

# Lower layers never import higher ones: settings/errors → models → database/migrations →
# operations → agent → cli. Modules of one layer may import each other.
LAYERS: dict[str, int] = {
    "errors": 0,
    "settings": 0,
    "instrumentation": 0,
    "models": 1,
    "embedded": 1,
    "monitoring": 1,
    "locking": 1,
    "softdelete": 2,
    "database": 2,
    "routing": 2,
    "fastpath": 2,
    "reader": 2,
    "treecache": 2,
    "migrate": 2,
    "migrations": 2,
    "catalog": 3,
    "queries": 3,
    "search": 3,
    "ingest": 3,
    "sample": 3,
    "events": 3,
    "health": 3,
    "stats": 3,
    "backup": 3,
    "replicas": 3,
    "roles": 3,
    "agent": 4,
    "cli": 5,
    "web": 5,
    "testing": 5,
}


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> set[str]:
    """The pokervod_db modules ``path`` imports, except in a module ``__getattr__`` (the lazy
    re-exports that keep old import paths working)."""
    tree = ast.parse(path.read_text())
    shims = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
    ]
    skipped = {id(n) for shim in shims for n in ast.walk(shim)}
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            if name == "pokervod_db":
                found.update(f"pokervod_db.{alias.name}" for alias in node.names)
            elif name.startswith("pokervod_db."):
                found.add(name)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pokervod_db."))
    return found


# Upward imports that are deliberate, each inside the one function that needs it.
DELIBERATE = {
    # BACKUP_WAL=true: starting the embedded server turns on its WAL archiving.
    ("embedded.py", "pokervod_db.backup.wal"),
}


def test_imports_follow_the_layers() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "__init__.py":
            continue
        area = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        assert area in LAYERS, f"{area} has no layer: add it to LAYERS"
        for imported in _imports(path):
            target = _area(imported)
            assert target in LAYERS, f"{target} has no layer: add it to LAYERS"
            if (str(path.relative_to(PACKAGE)), imported) in DELIBERATE:
                continue
            if target != area and LAYERS[target] > LAYERS[area]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {imported}")
    assert wrong == []


def test_database_module_does_not_import_the_models() -> None:
    imported = _imports(PACKAGE / "database.py")
    assert not any(_area(name) in {"models", "catalog"} for name in imported), imported


def test_top_level_api_is_small_and_names_no_event() -> None:
    assert set(pokervod_db.__all__) == {
        "Database",
        "DatabaseAgent",
        "PokervodDBError",
        "Settings",
        "load_settings",
    }
    for name in ("Event", "EventType"):
        with pytest.raises(AttributeError, match=r"pokervod_db\.events.*pokervod_db\.models"):
            getattr(pokervod_db, name)


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("SCHEMA", "settings"),
        ("MigrationError", "errors"),
        ("EventBus", "events"),
        ("transaction", "database"),
        ("create_catalog_tree", "catalog"),
        ("MigrationResult", "agent"),
    ],
)
def test_names_the_top_level_used_to_export_still_import(name: str, module: str) -> None:
    import importlib

    assert getattr(pokervod_db, name) is getattr(
        importlib.import_module(f"pokervod_db.{module}"), name
    )
    with pytest.raises(AttributeError):
        _ = pokervod_db.no_such_name
