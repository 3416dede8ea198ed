from pathlib import Path

import pytest
import yaml

from serhpo.config import (
    deep_merge,
    drop_nulls,
    load_config,
    load_schema,
    read_stage_config,
    validate_config,
    with_defaults,
)
from serhpo.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_shipped_config_and_demo_are_valid() -> None:
    config = load_config([REPO / "config.yaml", REPO / "profiles/demo/demo-config.yaml"])
    assert config["corpora"]["emodb"]["source"] == "synthetic"
    assert config["corpora"]["ravdess"]["label_map"] == {"calm": "neutral", "surprised": None}
    # Defaults from the schema fill every corpus entry.
    assert config["corpora"]["cremad"]["expect_count"] == "official"
    assert config["split"]["strategy"] == "speaker"


def test_every_schema_key_has_a_description_and_default() -> None:
    def walk(node: dict, path: str) -> list[str]:
        missing = []
        for key, sub in node.get("properties", {}).items():
            where = f"{path}.{key}".lstrip(".")
            if "description" not in sub:
                missing.append(f"{where}: description")
            if "default" not in sub and key not in node.get("required", []):
                missing.append(f"{where}: default")
            missing += walk(sub, where)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            missing += walk(extra, f"{path}.<name>")
        return missing

    assert walk(load_schema(), "") == []


def test_a_misspelled_key_is_named_with_what_is_allowed(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", {"split": {"stratgy": "speaker"}})
    with pytest.raises(UserError, match=r"split: Additional properties.*'stratgy'"):
        load_config([REPO / "config.yaml", bad])


def test_a_bad_value_is_named_with_the_allowed_values(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", {"split": {"strategy": "random"}})
    with pytest.raises(UserError, match=r"split.strategy: 'random' is not one of.*stratified"):
        load_config([REPO / "config.yaml", bad])


def test_merge_is_key_by_key() -> None:
    merged = deep_merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"c": 5}})
    assert merged == {"a": {"b": 1, "c": 5}, "d": 3}


def test_defaults_fill_entries_under_additional_properties() -> None:
    completed = with_defaults({"corpora": {"mine": {"source": "x"}}}, load_schema())
    assert completed["corpora"]["mine"]["role"] == "zero_shot"
    assert completed["corpora"]["mine"]["synthetic"]["speakers"] == 10
    validate_config(completed, load_schema())


def test_stage_config_merges_files_then_json_and_checks_only_what_is_set(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", {"split": {"strategy": "speaker"}, "seed": 1})
    second = write(tmp_path, "b.yaml", {"seed": 2})
    config = read_stage_config([first, second], '{"report": {"paper_figures": false}}')
    assert config["seed"] == 2 and config["split"]["strategy"] == "speaker"
    assert config["report"] == {"thresholds": [0.8, 0.9], "paper_figures": False}
    assert config["corpora"] == {}  # not set, not checked: a stage may not need it


@pytest.mark.parametrize(
    ("text", "message"),
    [("{seed: 1}", "not JSON"), ("[1, 2]", "expected a JSON object"), ('{"sed": 1}', "sed")],
)
def test_stage_config_json_errors_say_what_was_found(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        read_stage_config([], text)


def test_stage_config_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="missing.yaml does not exist"):
        read_stage_config([tmp_path / "missing.yaml"])


OVERRIDE = {
    "corpora": {"cremad": None, "emodb": {"source": "synthetic"}},
    "search_space": {"unfreeze": None, "maxlen": 48000, "epochs": {"type": "fixed", "value": 3}},
}


def test_an_override_file_removes_with_null_and_keeps_the_nulls_the_schema_allows(
    tmp_path: Path,
) -> None:
    override = write(tmp_path, "override.yaml", OVERRIDE)
    for config in (
        load_config([REPO / "config.yaml", override]),
        read_stage_config([REPO / "config.yaml", override]),
    ):
        assert sorted(config["corpora"]) == ["emodb", "ravdess"]
        assert sorted(config["search_space"]) == ["epochs", "lr", "maxlen"]
        assert config["search_space"]["maxlen"] == 48000
        # A null that means something stays: ravdess drops 'surprised', sha256 is unpinned.
        assert config["corpora"]["ravdess"]["label_map"]["surprised"] is None
        assert config["corpora"]["ravdess"]["sha256"] is None


def test_drop_nulls_names_what_it_removed_and_restores_defaults() -> None:
    schema = load_schema()
    removed: list[str] = []
    merged = deep_merge(
        {"corpora": {"a": {"source": "synthetic"}, "b": {"source": "download"}}, "seed": 3},
        {"corpora": {"b": None}, "seed": None, "evaluation": {"bootstrap": None}},
    )
    cleaned = drop_nulls(merged, schema, removed=removed)
    assert removed == ["corpora.b", "seed", "evaluation.bootstrap"]
    completed = with_defaults(cleaned, schema)
    assert completed["seed"] == 0 and completed["evaluation"]["bootstrap"] == 1000
    assert list(completed["corpora"]) == ["a"]


def test_a_pinned_parameter_is_validated_and_proposed_as_is() -> None:
    from serhpo.hpo.space import SearchSpace

    config = with_defaults(
        drop_nulls({"search_space": {"lr": {"type": "uniform", "low": 0, "high": 1},
                                      "maxlen": 48000}}, load_schema()),
        load_schema(),
    )  # fmt: skip
    validate_config({"search_space": config["search_space"]}, load_schema())
    assert SearchSpace.from_config(config["search_space"]).fixed_values() == {"maxlen": 48000}
