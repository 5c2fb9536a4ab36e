"""ARCHITECTURE.md stays true: the import rules between packages hold, no package imports
another's private names, and every file the document names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: folder -> the packages of the suite it may import (ARCHITECTURE.md's table)
MAY_IMPORT = {
    "components": {"components"},
    "recipes": {"components", "recipes"},
    "sweeps": {"components", "recipes", "sweeps"},
    "reports": {"components", "recipes", "sweeps", "reports"},
    "tzoo": {"components", "recipes", "sweeps", "reports", "tzoo"},
}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute tzoo module, imported names) of every import in a module."""
    package = path.relative_to(ROOT).parts[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside the same package
                found.append((f"tzoo.{package}", [a.name for a in node.names]))
            elif node.module and node.module.startswith("tzoo"):
                found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("tzoo")]
    return found


def _package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in MAY_IMPORT else "tzoo"


MODULES = sorted(p for folder in MAY_IMPORT for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_one_way_and_stay_public(path):
    folder = path.relative_to(ROOT).parts[0]
    for module, names in _imports(path):
        if module == "tzoo":  # the root package: its version only
            continue
        target = _package_of(module)
        assert target in MAY_IMPORT[folder], f"{folder}/ may not import {module}"
        if target != folder:
            private = [n for n in names if n.startswith("_")]
            assert not private, f"{path.name} imports private {private} from {module}"
            assert not any(part.startswith("_") for part in module.split(".")[2:]), module


def test_every_file_the_document_names_exists():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`((?:components|recipes|sweeps|reports|tzoo)/[\w/]*?\.py)`", text))
    assert named, "the document names no files"
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"ARCHITECTURE.md names files that do not exist: {missing}"
