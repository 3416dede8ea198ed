from __future__ import annotations

from typing import Any

import pytest

from serhpo.errors import UserError
from serhpo.hpo.settings import HpoSettings


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
        ({"hpo": {"n_trials": 0}}, "ax", ["hpo.n_trials", "0", ">= 1"]),
        ({"hpo": {"n_trials": None}}, "optuna", ["never stop"]),
        ({"hpo": {"pruning": {"enabled": "yes"}}}, "ax", ["hpo.pruning.enabled", "true or false"]),
        ({"hpo": {"multi_objective": {"sampler": "moead"}}}, "optuna", ["tpe, nsga2"]),
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
    settings = HpoSettings(engine="optuna", n_trials=15)
    assert settings.with_overrides(n_trials=4, seed=None).n_trials == 4
    with pytest.raises(UserError, match="n_workers"):
        HpoSettings(engine="ax").with_overrides(n_workers=2)


def test_grid_budget_full_gives_the_grid_engine_the_whole_grid() -> None:
    config = {"hpo": {"n_trials": 15, "grid_budget": "full"}}
    assert HpoSettings.from_config(config, engine="grid").n_trials is None
    assert HpoSettings.from_config(config, engine="optuna").n_trials == 15
