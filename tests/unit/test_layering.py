"""The import rules of DESIGN.md, checked on the source: lower layers never import higher ones.

tools → nothing of turngym but errors/http/trajectory; sandboxes → no envs, agents, trainers or cli;
envs → no agents, trainers or cli; agents → no trainers or cli; nothing but cli imports cli.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import turngym

ROOT = Path(turngym.__file__).parent
FORBIDDEN = {
    "tools": ("turngym.envs", "turngym.sandboxes", "turngym.agents", "turngym.trainers", "turngym.cli"),
    "sandboxes": ("turngym.envs", "turngym.agents", "turngym.trainers", "turngym.cli"),
    "envs": ("turngym.agents", "turngym.trainers", "turngym.cli"),
    "agents": ("turngym.trainers", "turngym.cli"),
    "trainers": ("turngym.cli",),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_higher_layers(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT.parent)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(imported_modules(path))
        if name.startswith(FORBIDDEN[package])
    ]
    assert not offenders, "\n".join(offenders)


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from turngym.trainers.loop import train\nimport turngym.cli\n")
    assert {"turngym.trainers.loop", "turngym.cli"} <= imported_modules(module)
