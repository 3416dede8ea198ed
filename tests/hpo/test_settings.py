from __future__ import annotations

from typing import Any

import pytest

from serhpo.config import complete_config, load_schema
from serhpo.errors import UserError
from serhpo.hpo.settings import (
    ENGINE_NAMES,
    HpoSettings,
    federated_study_config,
    keys_read_by,
    study_config,
    study_workers,
)


def test_defaults_reproduce_the_paper_strictly() -> None:
    settings = HpoSettings.from_config({}, engine="ax")
    assert (settings.seed, settings.n_trials, settings.time_budget_min) == (0, 15, None)
    assert settings.n_sobol == 5 and settings.grid_points == 3 and settings.n_workers == 1
    assert settings.pruning.enabled is False
    assert settings.multi_objective.enabled is False


def test_keys_are_read_and_chance_level_follows_the_label_set() -> None:
    config = {
        "seed": 7,
        "target_labels": ["a", "b", "c", "d"],
        "hpo": {
            "n_trials": 30,
            "time_budget_min": 90,
            "n_sobol": 8,
            "n_startup_trials": 4,
            "grid_points": 5,
            "pruning": {"enabled": True, "min_epochs": 2, "chance_margin": 0.05, "min_trials": 4},
            "multi_objective": {"enabled": True, "sampler": "nsga2", "population_size": 12},
            "n_workers": 3,
        },
    }
    settings = HpoSettings.from_config(config, engine="optuna")
    assert (settings.seed, settings.n_trials, settings.time_budget_min) == (7, 30, 90.0)
    assert (settings.n_sobol, settings.n_startup_trials, settings.grid_points) == (8, 4, 5)
    assert settings.pruning.min_epochs == 2 and settings.pruning.min_trials == 4
    assert settings.pruning.chance_level == 0.25
    assert settings.multi_objective.sampler == "nsga2"
    assert settings.multi_objective.population_size == 12
    assert settings.n_workers == 3


@pytest.mark.parametrize(
    ("config", "engine", "fragments"),
    [
        ({"hpo": {"n_trial": 3}}, "ax", ["hpo", "'n_trial'", "n_trials"]),
        ({"hpo": {"n_trials": 0}}, "ax", ["hpo.n_trials", "0", "minimum of 1"]),
        ({"hpo": {"n_trials": None}}, "optuna", ["never stop"]),
        ({"hpo": {"pruning": {"enabled": "maybe"}}}, "ax", ["hpo.pruning.enabled", "boolean"]),
        ({"hpo": {"multi_objective": {"sampler": "moead"}}}, "optuna", ["'tpe', 'nsga2'"]),
        ({"hpo": {"n_workers": 2}}, "hyperopt", ["hpo.n_workers", "optuna", "n_workers: 1"]),
        ({"hpo": {"engines": ["smac"]}}, "ax", ["hpo.engines", "smac"]),
        ({"seed": -1}, "ax", ["seed", "-1"]),
        ({}, "smac", ["smac", "ax, hyperopt, optuna, grid, random"]),
    ],
)
def test_bad_settings_name_the_key(
    config: dict[str, Any], engine: str, fragments: list[str]
) -> None:
    with pytest.raises(UserError) as raised:
        HpoSettings.from_config(config, engine=engine)
    for fragment in fragments:
        assert fragment in str(raised.value)


def test_the_grid_may_run_to_its_end_without_a_budget() -> None:
    settings = HpoSettings.from_config({"hpo": {"n_trials": None}}, engine="grid")
    assert settings.n_trials is None


def test_overrides_replace_only_given_values_and_are_checked() -> None:
    settings = HpoSettings.from_config({"hpo": {"n_trials": 15}}, engine="optuna")
    assert settings.with_overrides(n_trials=4, seed=None).n_trials == 4
    with pytest.raises(UserError, match="n_workers"):
        HpoSettings.from_config({}, engine="ax").with_overrides(n_workers=2)


def test_grid_budget_full_gives_the_grid_engine_the_whole_grid() -> None:
    config = {"hpo": {"n_trials": 15, "grid_budget": "full"}}
    assert HpoSettings.from_config(config, engine="grid").n_trials is None
    assert HpoSettings.from_config(config, engine="optuna").n_trials == 15


def test_every_hpo_key_is_read_by_some_engine_and_engines_by_none() -> None:
    keys = set(load_schema()["properties"]["hpo"]["properties"]) - {"engines"}
    read = {key for engine in ENGINE_NAMES for key in keys_read_by(engine)}
    assert read == keys
    assert all("engines" not in keys_read_by(engine) for engine in ENGINE_NAMES)


@pytest.mark.parametrize(
    ("key", "value", "rerun"),
    [
        ("n_sobol", 7, {"ax"}),
        ("n_startup_trials", 4, {"hyperopt", "optuna"}),
        ("grid_points", 4, {"grid"}),
        ("grid_budget", "full", {"grid"}),
        ("n_workers", 2, {"optuna", "random", "grid"}),
        ("n_trials", 3, set(ENGINE_NAMES)),
        ("engines", ["ax"], set()),
    ],
)
def test_editing_an_hpo_key_changes_only_the_studies_that_read_it(
    key: str, value: Any, rerun: set[str]
) -> None:
    before = complete_config({})
    after = complete_config({"hpo": {key: value}})
    changed = {
        engine
        for engine in ENGINE_NAMES
        if study_config(before, engine=engine) != study_config(after, engine=engine)
    }
    assert changed == rerun


def test_single_job_random_and_grid_studies_leave_n_workers_out_and_cv_studies_always() -> None:
    config = complete_config({"split": {"inner_folds": 4}})
    assert "n_workers" not in study_config(config, engine="random")["hpo"]
    assert study_config(config, engine="optuna")["hpo"]["n_workers"] == 1
    fold = study_config(config, engine="optuna", cross_validation=True)
    assert "n_workers" not in fold["hpo"] and fold["split"] == {"inner_folds": 4}
    workers = complete_config({"hpo": {"n_workers": 3}})
    assert [study_workers(workers, engine=e) for e in ("ax", "optuna")] == [1, 3]


def test_a_federated_study_takes_only_its_engines_options_from_hpo() -> None:
    before = complete_config({})
    edits = {"n_trials": 2, "n_sobol": 9, "pruning": {"enabled": True}}
    after = complete_config({"hpo": edits})
    for engine in ENGINE_NAMES:
        changed = federated_study_config(before, engine=engine) != federated_study_config(
            after, engine=engine
        )
        assert changed == (engine == "ax")
    study = federated_study_config(before, engine="optuna")["hpo"]
    assert study["multi_objective"]["cost"] == "cpu_seconds" and study["n_trials"] == 30
    settings = HpoSettings.from_config(federated_study_config(before, engine="grid"), engine="grid")
    assert settings.n_trials is None  # federated.grid_budget: full
