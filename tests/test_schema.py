"""serhpo.schema: the shipped schema's keys and defaults, read without torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from serhpo.schema import schema_default, schema_node


def test_defaults_and_ranges_are_read_by_dotted_key():
    assert schema_default("training.lr") == 0.0001
    assert schema_node("training.maxlen")["minimum"] == 400
    node = schema_node("training")
    node["properties"].clear()  # a copy: the cached schema is not changed
    assert "lr" in schema_node("training")["properties"]


def test_an_unknown_key_names_the_missing_part():
    with pytest.raises(KeyError, match="no 'speed'"):
        schema_default("training.speed")


def test_reading_the_schema_imports_no_torch():
    # prepare and split run in envs/data.yaml, which has no torch.
    code = "import sys, serhpo.schema, serhpo.audio; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
