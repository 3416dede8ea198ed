"""A study's settings: config's ``seed``, ``target_labels`` and ``hpo`` keys, typed.

The schema holds every key's default and range; :func:`serhpo.config.settings` fills and
validates them and builds these classes, which have neither. What this module decides is
what each engine reads (:func:`keys_read_by`), which the workflow's rules ask so that
editing one engine's key reruns only that engine's study.

Example:
    >>> settings = HpoSettings.from_config({"seed": 3, "hpo": {"n_trials": 20}}, engine="optuna")
    >>> settings.seed, settings.n_trials, settings.pruning.enabled
    (3, 20, False)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from serhpo.config import schema_node
from serhpo.errors import UserError

#: Engines, in the order the paper reports them, then the two baselines (the schema's list).
ENGINE_NAMES: tuple[str, ...] = tuple(schema_node("hpo.engines")["items"]["enum"])
#: Engines whose study several workers share (``hpo.n_workers`` > 1): Optuna through its
#: journal, random and grid through the trials each worker claims. Ax and Hyperopt propose
#: each trial from every earlier result, so they run one trial after another.
PARALLEL_ENGINES: tuple[str, ...] = ("optuna", "random", "grid")
#: The metric every study maximises (written into best.yaml).
METRIC = "valid_bca"

#: ``hpo`` keys that only some engines read; every other key but ``engines`` (which chooses
#: the jobs, not what one computes) is read by all of them.
_ENGINE_ONLY_KEYS: dict[str, tuple[str, ...]] = {
    "n_sobol": ("ax",),
    "n_startup_trials": ("hyperopt", "optuna"),
    "grid_points": ("grid",),
    "grid_budget": ("grid",),
    "n_workers": PARALLEL_ENGINES,
}
#: ``hpo`` keys a federated study takes from ``hpo`` (its budget and objectives are its own).
_FEDERATED_INHERITED = ("n_sobol", "n_startup_trials", "grid_points")


def keys_read_by(engine: str, *, federated: bool = False) -> tuple[str, ...]:
    """The ``hpo`` keys a study of ``engine`` reads, in the schema's order.

    Args:
        engine: one of :data:`ENGINE_NAMES`.
        federated: the federated study of that engine, which takes only the engine's own
            options from ``hpo`` (its budget is ``federated.n_trials``).

    Example:
        >>> keys_read_by("ax")
        ('n_trials', 'time_budget_min', 'n_sobol', 'pruning', 'multi_objective')
        >>> keys_read_by("grid", federated=True)
        ('grid_points',)
    """
    if engine not in ENGINE_NAMES:
        raise UserError(f"engine {engine!r} is unknown; expected one of {', '.join(ENGINE_NAMES)}.")
    keys = [key for key in schema_node("hpo")["properties"] if key != "engines"]
    if federated:
        keys = [key for key in keys if key in _FEDERATED_INHERITED]
    return tuple(key for key in keys if engine in _ENGINE_ONLY_KEYS.get(key, ENGINE_NAMES))


def study_workers(config: Mapping[str, Any], *, engine: str) -> int:
    """How many jobs share the engine's study: ``hpo.n_workers`` for parallel engines, else 1.

    Example:
        >>> study_workers({"hpo": {"n_workers": 4}}, engine="ax")
        1
    """
    return config["hpo"]["n_workers"] if engine in PARALLEL_ENGINES else 1


def study_config(
    config: Mapping[str, Any], *, engine: str, cross_validation: bool = False
) -> dict[str, Any]:
    """What one engine's study reads of a completed config: the JSON its rule passes.

    Editing any other key (another engine's option, ``hpo.engines``) leaves it unchanged, so
    Snakemake reruns only the studies that read the key.

    Args:
        config: the completed config (:func:`serhpo.config.complete_config`).
        engine: one of :data:`ENGINE_NAMES`.
        cross_validation: an outer fold's study of speaker cross-validation: one job per
            fold (no ``n_workers``), selecting on ``split.inner_folds``.

    Example:
        >>> from serhpo.config import complete_config
        >>> sorted(study_config(complete_config({}), engine="ax")["hpo"])
        ['multi_objective', 'n_sobol', 'n_trials', 'pruning', 'time_budget_min']
    """
    keys = ("seed", "target_labels", "backbone", "model", "training", "features", "search_space")
    study = {key: config[key] for key in keys}
    study["hpo"] = {key: config["hpo"][key] for key in keys_read_by(engine)}
    if engine in ("random", "grid") and study["hpo"]["n_workers"] == 1:
        # Read since workers can share their studies (Optuna's always read it); left out at
        # its default so that single-job studies made before workers existed are not rerun.
        del study["hpo"]["n_workers"]
    if cross_validation:
        study["hpo"].pop("n_workers", None)  # the outer folds' studies run in parallel
        study["split"] = {"inner_folds": config["split"]["inner_folds"]}
    return study


def federated_study_config(config: Mapping[str, Any], *, engine: str) -> dict[str, Any]:
    """What one engine's federated study reads of a completed config (its rule's JSON).

    A multi-objective study of BCA against the clients' CPU seconds, never pruned, with
    ``federated``'s budget and search space and the engine's own ``hpo`` options.

    Example:
        >>> from serhpo.config import complete_config
        >>> federated_study_config(complete_config({}), engine="grid")["hpo"]["grid_budget"]
        'full'
    """
    federated = config["federated"]
    hpo = {key: config["hpo"][key] for key in keys_read_by(engine, federated=True)}
    hpo["n_trials"] = federated["n_trials"]
    if engine == "grid":
        hpo["grid_budget"] = federated["grid_budget"]
    hpo["pruning"] = {"enabled": False}
    multi = config["hpo"]["multi_objective"]
    hpo["multi_objective"] = {
        "enabled": True,
        "cost": "cpu_seconds",
        "sampler": multi["sampler"],
        "population_size": multi["population_size"],
    }
    study = {key: config[key] for key in ("seed", "target_labels", "features")}
    study["federated"] = {
        key: federated[key] for key in ("backbone", "model", "training", "simulation")
    }
    study["search_space"] = federated["search_space"]
    study["hpo"] = hpo
    return study


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

    enabled: bool
    min_epochs: int
    chance_margin: float
    min_trials: int
    margin: float
    n_classes: int
    step: str

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

    enabled: bool
    sampler: str
    population_size: int
    cost: str


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

    engine: str
    seed: int
    n_trials: int | None
    time_budget_min: float | None
    n_sobol: int
    n_startup_trials: int | None
    grid_points: int
    pruning: PruningSettings
    multi_objective: MultiObjectiveSettings
    n_workers: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, engine: str) -> HpoSettings:
        """The study settings of a (partial) config: :func:`serhpo.config.hpo_settings`.

        Raises:
            UserError: naming the key, what was found and what is allowed.
        """
        from serhpo.config import hpo_settings

        return hpo_settings(config, engine=engine)

    def checked(self) -> HpoSettings:
        """Check what the schema cannot: a budget is set, workers share only parallel engines.

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
            >>> HpoSettings.from_config({}, engine="optuna").with_overrides(n_trials=3).n_trials
            3
        """
        return replace(self, **{k: v for k, v in changes.items() if v is not None}).checked()
