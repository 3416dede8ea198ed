"""The HPO objective of federated training: ``serhpo hpo --objective federated``.

It reads the ``federated`` section of the config (family, fixed model parameters, fixed
federated settings, simulation resources) and the split's train and valid parts once, then
runs one :func:`~serhpo.federated.simulation.fit_federated` per trial. A trial's value is
the last round's validation BCA; its cost (``extra["cpu_seconds"]``) is the clients'
training CPU time, the second objective of the multi-objective study.

Example:
    >>> objective = federated_objective(config, split_csv=Path("split.csv"))  # doctest: +SKIP
    >>> result = objective({"lr": 0.1, "rounds": 20, "client_fraction": 0.5},
    ...                    never_prune)  # doctest: +SKIP
    >>> result.extra["cpu_seconds"]  # doctest: +SKIP
    3.2
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from serhpo.config import complete_config
from serhpo.errors import UserError
from serhpo.objective import config_seed, training_data, trial_params
from serhpo.trainer import TrainingData
from serhpo.trial import EpochReporter, LazyObjective, TrialResult

log = logging.getLogger(__name__)


def federated_section(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config's ``federated`` mapping (empty when absent)."""
    section = config.get("federated") or {}
    if not isinstance(section, Mapping):
        raise UserError(f"config key federated: found {section!r}; expected a mapping.")
    return dict(section)


def simulation_resources(config: Mapping[str, Any], *, num_cpus: int | None = None) -> Any:
    """:class:`~serhpo.federated.simulation.SimulationResources` from ``federated.simulation``."""
    from serhpo.federated.simulation import SimulationResources

    simulation = complete_config(config)["federated"]["simulation"]
    return SimulationResources(
        num_cpus=num_cpus if num_cpus is not None else simulation["num_cpus"],
        client_cpus=simulation["client_cpus"],
        object_store_mb=simulation["object_store_mb"],
    )


def federated_data(
    config: Mapping[str, Any],
    *,
    split_csv: Path,
    cache_dir: Path | None = None,
    parts: tuple[str, ...] = ("train", "valid"),
) -> TrainingData:
    """The split's ``parts`` and the feature cache of the federated family."""
    family = complete_config(config)["federated"]["backbone"]
    return training_data(config, split=split_csv, parts=parts, family=family, cache_dir=cache_dir)


def fixed_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """``federated.model`` and ``federated.training``: what every trial starts from."""
    return trial_params(config, section=federated_section(config))


def federated_objective(
    config: Mapping[str, Any],
    *,
    split_csv: Path,
    cache_dir: Path | None = None,
    num_cpus: int | None = None,
) -> LazyObjective:
    """Federated training as a study's objective, loaded on its first trial in each process.

    Args:
        config: the merged config (``seed``, ``target_labels``, ``features``, ``federated``).
        split_csv: the tuning corpus' split CSV; its train speakers are the clients.
        cache_dir: the feature cache root (default: config ``features.cache_dir``).
        num_cpus: CPUs the simulation may use (default: ``federated.simulation.num_cpus``).

    Returns:
        ``objective(params, report) -> TrialResult`` (picklable); a trial that raises
        anything but a :class:`UserError` is a failed trial.
    """
    return LazyObjective(
        functools.partial(
            _FederatedTrials,
            dict(config),
            split_csv=split_csv,
            cache_dir=cache_dir,
            num_cpus=num_cpus,
        ),
        what="federated trial",
    )


class _FederatedTrials:
    """The loaded objective: the split's train and valid parts, one simulation per trial."""

    def __init__(
        self,
        config: dict[str, Any],
        *,
        split_csv: Path,
        cache_dir: Path | None,
        num_cpus: int | None,
    ) -> None:
        self.data = federated_data(config, split_csv=split_csv, cache_dir=cache_dir)
        # Read once when the study loads, not on every trial.
        self.fixed, self.seed = fixed_params(config), config_seed(config)
        self.resources = simulation_resources(config, num_cpus=num_cpus)

    def __call__(self, params: dict[str, Any], report: EpochReporter) -> TrialResult:
        from serhpo.federated.simulation import fit_federated

        return fit_federated(
            {**self.fixed, **params},
            self.data,
            report=report,
            seed=self.seed,
            resources=self.resources,
        ).result
