"""The conda environments of the rule groups: the same pins as pyproject.toml, and everything the
rules that use them import.

Snakemake copies an environment file into .snakemake/conda/ before creating it, so a relative
``-e ..`` in it would point there; each environment's post-deploy script installs the project
instead. No conda runs here, so what each environment must hold is checked statically: every
module its rules' ``serhpo`` stages can import (lazily too) comes from a pinned distribution or
from one that a pinned distribution requires.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from serhpo.cli import STAGES

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "workflow"
ENVS = sorted((REPO / "envs").glob("*.yaml"))


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: list[str]) -> dict[str, str]:
    found = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;]+)", requirement.strip())
        if match:  # an extra is part of the pin: flwr[simulation] brings Ray
            found[normal(match.group(1)) + (match.group(2) or "")] = match.group(3)
    return found


DEPENDENCIES = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
PROJECT = pins(DEPENDENCIES)
RANGES = {normal(Requirement(r).name): str(Requirement(r).specifier) for r in DEPENDENCIES}


def pip_section(env: Path) -> list[str]:
    spec = yaml.safe_load(env.read_text())
    return next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_pins_match_pyproject(env: Path) -> None:
    env_pins = pins(pip_section(env))
    assert env_pins, f"{env.name} pins nothing"
    mismatched = {
        name: (v, PROJECT.get(name)) for name, v in env_pins.items() if PROJECT.get(name) != v
    }
    assert mismatched == {}
    ranges = {  # requirements without a pin, e.g. pyyaml>=6.0,<7: the same range
        normal(Requirement(line).name): str(Requirement(line).specifier)
        for line in pip_section(env)
        if not line.startswith("-") and "==" not in line
    }
    assert all(RANGES.get(name) == spec for name, spec in ranges.items()), (ranges, RANGES)
    assert not [line for line in pip_section(env) if line.startswith("-e")], (
        "a relative -e in an environment file resolves against Snakemake's copy of it in "
        ".snakemake/conda/; the post-deploy script installs the project"
    )
    deploy = env.with_name(f"{env.stem}.post-deploy.sh")
    assert "pip install --no-deps --editable ." in deploy.read_text()  # the serhpo command


def rule_groups() -> dict[str, set[str]]:
    """Environment file -> the serhpo stages of the rules that use it."""
    groups: dict[str, set[str]] = {}
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.MULTILINE)[1:]:
            env = re.search(r'conda:\s*"\.\./\.\./envs/(\w+\.yaml)"', block)
            stages = set(re.findall(r'"\(?serhpo ([a-z-]+) ', block))
            assert env and stages, f"rule {block.split(':')[0]} names no conda env or stage"
            groups.setdefault(env[1], set()).update(stages)
    return groups


def module_file(name: str) -> Path | None:
    base = PACKAGE.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def imports_of(name: str) -> frozenset[str]:
    """Every module ``name`` imports anywhere (lazy imports and importlib strings too)."""
    tree = ast.parse(module_file(name).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            name != "serhpo.cli"  # its table of stages: it imports only the one that runs
            and isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and re.fullmatch(r"serhpo(\.\w+)+(:\w+)?", node.value)  # importlib targets
        ):
            found.add(node.value.split(":")[0])
    return frozenset(found)


def third_party_imports(stages: set[str]) -> set[str]:
    """Top-level third-party modules that the stages' serhpo modules can import."""
    todo = ["serhpo", "serhpo.cli", *(STAGES[stage][0] for stage in stages)]
    seen: set[str] = set()
    outside: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for imported in imports_of(name):
            top = imported.split(".")[0]
            if top != "serhpo":
                if top not in sys.stdlib_module_names and top != "__future__":
                    outside.add(top)
                continue
            parts = imported.split(".")
            for end in range(1, len(parts) + 1):  # the packages above it run too
                if module_file(".".join(parts[:end])) is not None:
                    todo.append(".".join(parts[:end]))
    return outside


def with_requirements(names: set[str]) -> set[str]:
    """The distributions and, recursively, what they require (extras left out)."""
    closure, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in closure:
            continue
        closure.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(normal(requirement.name))
    return closure


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_each_env_holds_what_its_rules_import(env: Path) -> None:
    stages = rule_groups()[env.name]
    provided = with_requirements(
        {normal(Requirement(line).name) for line in pip_section(env) if not line.startswith("-")}
    )
    distributions = importlib.metadata.packages_distributions()
    missing = {
        module: sorted(normal(d) for d in distributions.get(module, [module]))
        for module in third_party_imports(stages)
        if not {normal(d) for d in distributions.get(module, [module])} & provided
    }
    assert missing == {}, f"{env.name} (stages {sorted(stages)}) lacks {missing}"


def test_every_rule_group_has_an_env() -> None:
    assert set(rule_groups()) == {env.name for env in ENVS}
