"""A study's settings, read from config's ``seed``, ``target_labels`` and ``hpo`` keys.

Example:
    >>> settings = HpoSettings.from_config({"seed": 3, "hpo": {"n_trials": 20}}, engine="optuna")
    >>> settings.seed, settings.n_trials, settings.pruning.enabled
    (3, 20, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from serhpo.errors import UserError

#: Engines, in the order the paper reports them, then the two baselines.
ENGINE_NAMES: tuple[str, ...] = ("ax", "hyperopt", "optuna", "grid", "random")
#: Engines whose study several workers share (``hpo.n_workers`` > 1): Optuna through its
#: journal, random and grid through the trials each worker claims. Ax and Hyperopt propose
#: each trial from every earlier result, so they run one trial after another.
PARALLEL_ENGINES: tuple[str, ...] = ("optuna", "random", "grid")
#: The metric every study maximises (written into best.yaml).
METRIC = "valid_bca"
MULTI_OBJECTIVE_SAMPLERS: tuple[str, ...] = ("tpe", "nsga2")
#: What the second objective measures: the trial's wall seconds, or the CPU seconds its
#: objective reports in ``extra["cpu_seconds"]`` (the federated trainer: the clients' work).
MULTI_OBJECTIVE_COSTS: tuple[str, ...] = ("trial_seconds", "cpu_seconds")

_HPO_KEYS = {
    "engines",
    "n_trials",
    "grid_budget",
    "time_budget_min",
    "n_sobol",
    "n_startup_trials",
    "grid_points",
    "pruning",
    "multi_objective",
    "n_workers",
}
_PRUNING_KEYS = {"enabled", "min_epochs", "chance_margin", "min_trials", "margin"}
_MULTI_KEYS = {"enabled", "sampler", "population_size", "cost"}


@dataclass(frozen=True)
class PruningSettings:
    """When a trial is stopped early (off by default: the paper runs every trial to the end).

    Attributes:
        enabled: stop unpromising trials after an epoch.
        min_epochs: no trial is stopped before this epoch.
        chance_margin: a trial whose BCA is <= 1/n_classes + this margin is at chance level.
        min_trials: the median rule needs this many completed trials that reached the epoch.
        margin: the median rule stops a trial only when its BCA is below the completed
            trials' median by more than this (a trial within noise of the median goes on).
        n_classes: number of target labels (from config's ``target_labels``).
        step: what one report is, for the reasons logged: ``epoch``, or ``inner fold`` in a
            cross-validation study (its running mean is reported after each inner fold).
    """

    enabled: bool = False
    min_epochs: int = 1
    chance_margin: float = 0.02
    min_trials: int = 3
    margin: float = 0.05
    n_classes: int = 7
    step: str = "epoch"

    @property
    def chance_level(self) -> float:
        """BCA of a model that always predicts one class."""
        return 1.0 / self.n_classes


@dataclass(frozen=True)
class MultiObjectiveSettings:
    """Validation BCA (maximised) against a trial's cost (minimised).

    Attributes:
        enabled: Optuna optimises both with a multi-objective sampler; every engine writes
            pareto.csv and pareto.png (the others compute the front from trials.csv).
        sampler: Optuna's ``tpe`` (multi-objective TPE) or ``nsga2`` (NSGA-II).
        population_size: NSGA-II's population (its default 50 exceeds small budgets).
        cost: ``trial_seconds`` (wall time) or ``cpu_seconds`` (what the objective reports).
    """

    enabled: bool = False
    sampler: str = "tpe"
    population_size: int = 10
    cost: str = "trial_seconds"


@dataclass(frozen=True)
class HpoSettings:
    """Everything a study needs besides its search space and objective.

    Attributes:
        engine: one of :data:`ENGINE_NAMES`.
        seed: reaches every engine (and, derived, every worker and every resume).
        n_trials: trial budget (None: only the time budget; the grid engine stops at its end).
        time_budget_min: wall-clock budget over all resumes (None: only the trial budget).
        n_sobol: Ax's quasi-random Sobol trials before the Gaussian process takes over.
        n_startup_trials: random trials before TPE (Hyperopt, Optuna); None: each library's
            default (Hyperopt 20, Optuna 10).
        grid_points: points per numeric parameter for the grid engine, unless ``grid:`` is given.
        pruning: early stopping of trials.
        multi_objective: BCA against trial seconds.
        n_workers: processes or jobs sharing one study (Optuna, random and grid).
    """

    engine: str = "optuna"
    seed: int = 0
    n_trials: int | None = 15
    time_budget_min: float | None = None
    n_sobol: int = 5
    n_startup_trials: int | None = None
    grid_points: int = 3
    pruning: PruningSettings = field(default_factory=PruningSettings)
    multi_objective: MultiObjectiveSettings = field(default_factory=MultiObjectiveSettings)
    n_workers: int = 1

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, engine: str) -> HpoSettings:
        """Read and check ``seed``, ``target_labels`` and ``hpo`` from a (merged) config.

        Raises:
            UserError: naming the key, what was found and what is allowed.
        """
        if engine not in ENGINE_NAMES:
            raise UserError(
                f"engine {engine!r} is unknown; expected one of {', '.join(ENGINE_NAMES)}."
            )
        hpo = config.get("hpo") or {}
        _check_mapping(hpo, "hpo", _HPO_KEYS)
        engines = hpo.get("engines", list(ENGINE_NAMES[:4]))
        if not isinstance(engines, list) or not set(engines) <= set(ENGINE_NAMES):
            raise UserError(
                f"config key hpo.engines: found {engines!r}; expected a list drawn from "
                f"{list(ENGINE_NAMES)}."
            )
        labels = config.get("target_labels") or [None] * 7
        pruning = hpo.get("pruning") or {}
        _check_mapping(pruning, "hpo.pruning", _PRUNING_KEYS)
        multi = hpo.get("multi_objective") or {}
        _check_mapping(multi, "hpo.multi_objective", _MULTI_KEYS)
        settings = cls(
            engine=engine,
            seed=_integer(config.get("seed", 0), "seed", minimum=0),
            n_trials=(
                None  # the whole grid: the paper's baseline
                if engine == "grid" and hpo.get("grid_budget", "same") == "full"
                else _integer(hpo.get("n_trials", 15), "hpo.n_trials", minimum=1, null=True)
            ),
            time_budget_min=_number(hpo.get("time_budget_min"), "hpo.time_budget_min"),
            n_sobol=_integer(hpo.get("n_sobol", 5), "hpo.n_sobol", minimum=1),
            n_startup_trials=_integer(
                hpo.get("n_startup_trials"), "hpo.n_startup_trials", minimum=0, null=True
            ),
            grid_points=_integer(hpo.get("grid_points", 3), "hpo.grid_points", minimum=2),
            pruning=PruningSettings(
                enabled=_boolean(pruning.get("enabled", False), "hpo.pruning.enabled"),
                min_epochs=_integer(
                    pruning.get("min_epochs", 1), "hpo.pruning.min_epochs", minimum=1
                ),
                chance_margin=_number(
                    pruning.get("chance_margin", 0.02), "hpo.pruning.chance_margin", null=False
                ),
                min_trials=_integer(
                    pruning.get("min_trials", 3), "hpo.pruning.min_trials", minimum=1
                ),
                margin=_number(pruning.get("margin", 0.05), "hpo.pruning.margin", null=False),
                n_classes=max(2, len(labels)),
            ),
            multi_objective=MultiObjectiveSettings(
                enabled=_boolean(multi.get("enabled", False), "hpo.multi_objective.enabled"),
                sampler=_one_of(
                    multi.get("sampler", "tpe"),
                    "hpo.multi_objective.sampler",
                    MULTI_OBJECTIVE_SAMPLERS,
                ),
                population_size=_integer(
                    multi.get("population_size", 10),
                    "hpo.multi_objective.population_size",
                    minimum=2,
                ),
                cost=_one_of(
                    multi.get("cost", "trial_seconds"),
                    "hpo.multi_objective.cost",
                    MULTI_OBJECTIVE_COSTS,
                ),
            ),
            n_workers=_integer(hpo.get("n_workers", 1), "hpo.n_workers", minimum=1),
        )
        return settings.checked()

    def checked(self) -> HpoSettings:
        """Check the combination of settings (budget present, workers supported).

        Raises:
            UserError: what is wrong and how to fix it.
        """
        if self.n_trials is None and self.time_budget_min is None and self.engine != "grid":
            raise UserError(
                "config keys hpo.n_trials and hpo.time_budget_min are both null: the study would "
                "never stop. Set at least one of them."
            )
        if self.n_workers > 1 and self.engine not in PARALLEL_ENGINES:
            raise UserError(
                f"config key hpo.n_workers: found {self.n_workers} for engine {self.engine!r}, "
                f"which proposes each trial from every earlier result and so runs one trial "
                f"after another; workers can share studies of {', '.join(PARALLEL_ENGINES)}. "
                f"Set hpo.n_workers: 1 for {self.engine}."
            )
        return self

    def with_overrides(self, **changes: Any) -> HpoSettings:
        """A copy with some fields changed (None values are ignored), checked again.

        Example:
            >>> HpoSettings().with_overrides(n_trials=3, seed=None).n_trials
            3
        """
        return replace(self, **{k: v for k, v in changes.items() if v is not None}).checked()


def _check_mapping(value: Any, key: str, allowed: set[str]) -> None:
    if not isinstance(value, Mapping):
        raise UserError(f"config key {key}: found {value!r}; expected a mapping.")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise UserError(f"config key {key}: unknown key(s) {unknown}; allowed: {sorted(allowed)}.")


def _integer(value: Any, key: str, *, minimum: int, null: bool = False) -> Any:
    if value is None and null:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or null" if null else "")
        raise UserError(f"config key {key}: found {value!r}; expected {allowed}.")
    return value


def _number(value: Any, key: str, *, null: bool = True) -> Any:
    if value is None and null:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        allowed = "a number >= 0" + (" or null" if null else "")
        raise UserError(f"config key {key}: found {value!r}; expected {allowed}.")
    return float(value)


def _boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"config key {key}: found {value!r}; expected true or false.")
    return value


def _one_of(value: Any, key: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UserError(f"config key {key}: found {value!r}; allowed: {', '.join(allowed)}.")
    return value
