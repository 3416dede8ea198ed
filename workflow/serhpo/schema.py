"""The config schema, read: its keys, defaults and ranges, with nothing but PyYAML.

Stages that decode audio (``prepare``, ``split``) run in an environment without torch, so the
schema's defaults they need come from here rather than from :mod:`serhpo.config`, which can
build the settings classes of training and HPO.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

#: The schema shipped with the workflow.
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """Read the config schema."""
    with open(path) as stream:
        return yaml.safe_load(stream)


@functools.cache
def _shipped_schema() -> dict[str, Any]:
    return load_schema()


def schema_node(key: str) -> dict[str, Any]:
    """The shipped schema's entry for a dotted config key (a copy).

    Example:
        >>> schema_node("training.maxlen")["minimum"]
        400
    """
    node: Any = _shipped_schema()
    for part in key.split("."):
        properties = node.get("properties", {})
        if part not in properties:
            raise KeyError(f"the schema has no key {key!r} (no {part!r})")
        node = properties[part]
    return copy.deepcopy(node)


def schema_default(key: str) -> Any:
    """The shipped schema's default of a dotted config key: the one place defaults live.

    Example:
        >>> schema_default("training.lr")
        0.0001
        >>> sorted(schema_default("search_space"))
        ['epochs', 'lr', 'maxlen', 'unfreeze']
    """
    return schema_node(key)["default"]
