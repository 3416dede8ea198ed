"""The conda environments of the rule groups pin the same versions as pyproject.toml."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def pins(requirements: list[str]) -> dict[str, str]:
    found = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;]+)", requirement.strip())
        if match:  # an extra is part of the pin: flwr[simulation] brings Ray
            name = match.group(1).lower().replace("_", "-") + (match.group(2) or "")
            found[name] = match.group(3)
    return found


PROJECT = pins(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])


@pytest.mark.parametrize("env", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_pins_match_pyproject(env: Path) -> None:
    spec = yaml.safe_load(env.read_text())
    pip_section = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    env_pins = pins(pip_section)
    assert env_pins, f"{env.name} pins nothing"
    mismatched = {
        name: (v, PROJECT.get(name)) for name, v in env_pins.items() if PROJECT.get(name) != v
    }
    assert mismatched == {}
    assert "-e .." in pip_section  # the rules call the serhpo command
