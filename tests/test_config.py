import dataclasses
import inspect
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from serhpo.config import (
    SettingsParam,
    cache_config,
    cache_plan,
    check_config,
    complete_config,
    deep_merge,
    drop_nulls,
    load_config,
    load_schema,
    read_stage_config,
    schema_default,
    section_values,
    settings,
    validate_config,
    with_defaults,
)
from serhpo.errors import UserError
from serhpo.hpo.settings import study_config
from serhpo.hpo.space import SearchSpace

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


# ---- checks before any work (issue 15, items 7 and 8) -------------------------------------

BASE = [REPO / "config.yaml", REPO / "profiles/demo/demo-config.yaml"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"search_space": {"lr": {"low": 0.1, "high": 0.01}}},
         r"search_space.lr: found low=0.1, high=0.01; expected low < high"),
        ({"search_space": {"lr": {"low": 0.0}}},
         r"search_space.lr.low: found 0.0; a loguniform parameter needs low > 0"),
        ({"search_space": {"epochs": {"low": 6, "high": 2}}},
         r"search_space.epochs: found low=6, high=2; expected low < high"),
        ({"search_space": {"lr": {"type": "loguniorm"}}},
         r"search_space.lr.type: found 'loguniorm'; allowed: loguniform, uniform, int"),
        ({"search_space": {"maxlen": {"choices": []}}},
         r"search_space.maxlen.choices: found \[\]; expected a list of at least two"),
        ({"federated": {"search_space": {"rounds": {"choices": []}}}},
         r"federated.search_space.rounds.choices: found \[\]"),
    ],
)  # fmt: skip
def test_a_bad_search_space_is_named_at_validation(
    tmp_path: Path, override: dict, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        load_config([*BASE, write(tmp_path, "bad.yaml", override)])


def test_pinned_and_removed_parameters_pass_validation(tmp_path: Path) -> None:
    override = {"search_space": {"lr": 1.0e-3, "epochs": {"type": "fixed", "value": 3},
                                 "unfreeze": None}}  # fmt: skip
    config = load_config([*BASE, write(tmp_path, "ok.yaml", override)])
    assert sorted(config["search_space"]) == ["epochs", "lr", "maxlen"]


def test_a_label_map_target_typo_is_named_at_validation(tmp_path: Path) -> None:
    typo = {"corpora": {"ravdess": {"label_map": {"calm": "nuetral"}}}}
    with pytest.raises(UserError, match=r"corpora.ravdess.label_map.calm: found 'nuetral'.*"
                       r"allowed: \['anger'"):  # fmt: skip
        load_config([*BASE, write(tmp_path, "typo.yaml", typo)])
    unknown = {"corpora": {"ravdess": {"label_map": {"clam": "neutral"}}}}
    with pytest.raises(UserError, match=r"corpora.ravdess.label_map: found \['clam'\]"):
        load_config([*BASE, write(tmp_path, "unknown.yaml", unknown)])


def test_a_missing_local_source_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "emodb").mkdir()
    config = {"corpora": {"emodb": {"source": "emodb"}, "mine": {"source": "data/mine"}}}
    with pytest.raises(UserError, match=r"corpora.mine.source: found 'data/mine', but .*data/mine "
                       r"is no such folder.*set it to download or synthetic"):  # fmt: skip
        check_config(config, project_dir=tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data/mine").write_text("")
    with pytest.raises(UserError, match="is a file"):
        check_config(config, project_dir=tmp_path)
    check_config(config)  # without a project folder, the file system is not checked


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nsplit:\n  strategy: speaker\n   folds: 2\n")
    for load in (load_config, read_stage_config):
        with pytest.raises(UserError, match=r"bad.yaml, line 4, column \d+: not valid YAML"):
            load([bad])


def test_check_config_names_a_yaml_error_and_accepts_the_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from serhpo.cli import main

    monkeypatch.chdir(REPO)
    assert main(["check-config", *map(str, BASE)]) == 0
    assert "config OK" in capsys.readouterr().out
    bad = tmp_path / "mine.yaml"
    bad.write_text("search_space:\n  lr: {type: uniform, low: 0, high: 1\n")
    assert main(["check-config", "config.yaml", str(bad)]) == 2
    assert "mine.yaml, line 3, column 1: not valid YAML" in capsys.readouterr().err


def test_stage_settings_read_as_one_line_in_the_report_and_whole_in_the_shell() -> None:
    from snakemake.logging import format_dict
    from snakemake.utils import QuotedFormatter

    text = json.dumps({"hpo": {"n_trials": 3}, "split": {"strategy": "speaker"}})
    settings = SettingsParam(text)
    # what the report's "Job parameters" panel shows (Snakemake's own formatting)
    shown = format_dict({"settings": settings})
    assert shown.startswith("settings=JSON of config keys hpo, split (")
    assert "n_trials" not in shown
    # what the rule's shell receives: the JSON itself, shell-quoted
    command = QuotedFormatter().format("--config-json {settings:jsonq}", settings=settings)
    assert command == "--config-json " + shlex.quote(text)
    # Snakemake detects a changed param by repr: the same as the plain JSON string's
    assert repr(settings) == repr(text) and settings == text


def _dataclasses_in(value: object) -> list[object]:
    """``value`` and every dataclass instance it holds."""
    found = [value]
    for item in dataclasses.fields(value):  # type: ignore[arg-type]
        inner = getattr(value, item.name)
        if dataclasses.is_dataclass(inner):
            found += _dataclasses_in(inner)
    return found


def test_settings_carry_no_defaults_and_from_nothing_equal_the_schemas() -> None:
    typed = settings({}, engine="optuna")
    schema = load_schema()["properties"]

    def defaults(key: str) -> dict:
        node = schema
        for part in key.split("."):
            node = node[part]["properties"] if "properties" in node[part] else node[part]
        return {name: entry["default"] for name, entry in node.items()}

    # No settings class restates a default: every field comes from the config.
    for instance in _dataclasses_in(typed):
        for item in dataclasses.fields(instance):  # type: ignore[arg-type]
            assert item.default is dataclasses.MISSING, (type(instance).__name__, item.name)
            assert item.default_factory is dataclasses.MISSING, item.name
    assert dataclasses.asdict(typed.training) == defaults("training")
    assert dataclasses.asdict(typed.federated) == defaults("federated.training")
    hpo = dataclasses.asdict(typed.hpo)
    for key, value in defaults("hpo").items():
        if key not in ("engines", "grid_budget"):
            assert hpo[key] == (dict(hpo[key]) if isinstance(value, dict) else value), key
    pruning = {k: v for k, v in hpo["pruning"].items() if k not in ("n_classes", "step")}
    assert pruning == defaults("hpo.pruning")
    assert hpo["multi_objective"] == defaults("hpo.multi_objective")
    assert typed.hpo.pruning.n_classes == len(schema["target_labels"]["default"])
    assert typed.seed == schema["seed"]["default"]
    assert typed.backbone == schema["backbone"]["properties"]["name"]["default"]
    assert typed.paths.cache_dir == Path(defaults("features")["cache_dir"])
    assert typed.search_space == SearchSpace.from_config(schema["search_space"]["default"])
    assert typed.federated_search_space.names == tuple(
        schema["federated"]["properties"]["search_space"]["default"]
    )


def test_the_defaults_code_keeps_of_its_own_are_the_schemas() -> None:
    # Library functions callable without a config keep a default; it must be the schema's.
    from serhpo.audio import AudioChecks, Loudness
    from serhpo.cvpool import pool_predictions, speaker_bootstrap_scores
    from serhpo.evaluation import DEFAULT_RESAMPLES
    from serhpo.federated.evaluate import select_configurations
    from serhpo.federated.simulation import SimulationResources

    assert schema_default("evaluation.bootstrap") == DEFAULT_RESAMPLES
    for function in (pool_predictions, speaker_bootstrap_scores):
        parameters = inspect.signature(function).parameters
        assert parameters["seed"].default == schema_default("seed"), function.__name__
        assert parameters["resamples"].default == schema_default("evaluation.bootstrap")
    audio = complete_config({})["audio"]
    checks = dataclasses.asdict(AudioChecks())
    assert checks == {key: audio[key] for key in checks}
    assert dataclasses.asdict(Loudness()) == audio["loudness"]
    assert AudioChecks(silence_dbfs=-60.0).min_duration_s == audio["min_duration_s"]
    assert inspect.signature(select_configurations).parameters["margin"].default is None
    simulation = complete_config({})["federated"]["simulation"]
    assert dataclasses.asdict(SimulationResources()) == simulation


def test_settings_fill_a_partial_config_and_convert_what_engines_hand_over() -> None:
    typed = settings(
        {"training": {"maxlen": np.float64(32000.0), "lr": 1, "grad_clip": "none"}},
        engine="grid",
    )
    assert typed.training.maxlen == 32000 and isinstance(typed.training.maxlen, int)
    assert typed.training.lr == 1.0 and isinstance(typed.training.lr, float)
    assert typed.training.grad_clip is None and typed.training.epochs == 5
    assert typed.hpo is not None and typed.hpo.engine == "grid"
    assert settings({}).hpo is None


@pytest.mark.parametrize(
    ("config", "fragments"),
    [
        ({"training": {"maxlen": 100}}, ["training.maxlen", "100", "minimum of 400"]),
        ({"training": {"lr": 0}}, ["training.lr", "minimum of 0"]),
        ({"training": {"lr": float("inf")}}, ["training.lr", "found inf", "finite"]),
        ({"training": {"device": "gpu"}}, ["training.device", "'gpu'"]),
        ({"training": {"normalise": "global"}}, ["training.normalise", "'global'"]),
        ({"federated": {"training": {"client_fraction": 2}}}, ["client_fraction", "maximum"]),
        ({"search_space": {"lr": {"type": "int", "low": 2, "high": 1}}}, ["search_space.lr"]),
    ],
)
def test_settings_refuse_what_the_schema_refuses_naming_the_key(
    config: dict, fragments: list[str]
) -> None:
    with pytest.raises(UserError) as raised:
        settings(config)
    for fragment in fragments:
        assert fragment in str(raised.value)


def test_a_trials_training_keys_are_checked_against_the_schemas_ranges() -> None:
    values = section_values("training", {"maxlen": 32000.0}, fix="fix it")
    assert (
        values["maxlen"] == 32000
        and values["lr"] == load_schema()["properties"]["training"]["properties"]["lr"]["default"]
    )
    with pytest.raises(UserError, match=r"training.epochs: 0 is less than the minimum of 1\."):
        section_values("training", {"epochs": 0}, fix="fix it")


@pytest.mark.parametrize(
    ("space", "maxlens"),
    [
        ({"maxlen": {"type": "choice", "choices": [16000, 32000]}}, (16000, 32000)),
        ({"maxlen": 24000}, (24000,)),
        ({"lr": 0.001}, (48000,)),  # training.maxlen, which every trial reads
        ({"maxlen": {"type": "int", "low": 16000, "high": 48000}}, ()),  # each trial its own
    ],
)
def test_the_cache_plans_exactly_the_maxlens_trials_will_read(space: dict, maxlens: tuple) -> None:
    config = complete_config({"search_space": space})
    # cache_features reads its own JSON; the studies theirs: both plan from the same values.
    plan = cache_plan(settings(cache_config(config)))
    assert plan.maxlens == maxlens and plan.paddings == (True,)
    assert plan == cache_plan(settings(study_config(config, engine="optuna")))


def test_the_cache_json_changes_only_with_what_the_cache_reads() -> None:
    base = cache_config(complete_config({}))
    assert cache_config(complete_config({"training": {"lr": 0.1}})) == base
    table2 = load_schema()["properties"]["search_space"]["default"]
    assert cache_config(complete_config({"search_space": {**table2, "lr": 0.1}})) == base
    assert cache_config(complete_config({"hpo": {"n_trials": 2}})) == base
    assert cache_config(complete_config({"training": {"maxlen": 16000}})) != base
    assert cache_config(complete_config({"search_space": {"window": "utterance"}})) != base


def test_the_cache_plans_whispers_windows_from_the_space_or_the_fixed_model() -> None:
    searched = {"search_space": {"window": {"type": "choice", "choices": ["30s", "utterance"]}}}
    assert cache_plan(settings(searched)).model_choices == {"window": ["30s", "utterance"]}
    fixed = {"model": {"window": "utterance"}, "search_space": {"lr": 0.001}}
    assert cache_plan(settings(fixed)).model_choices == {"window": ["utterance"]}
    assert cache_plan(settings({})).model_choices == {}
