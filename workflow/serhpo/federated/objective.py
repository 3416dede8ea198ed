"""The HPO objective of federated training: ``serhpo hpo --objective federated``.

It reads the ``federated`` section of the config (family, fixed model parameters, fixed
federated settings, simulation resources) and the split's train and valid parts once, then
runs one :func:`~serhpo.federated.simulation.fit_federated` per trial. A trial's value is
the last round's validation BCA; its cost (``extra["cpu_seconds"]``) is the clients'
training CPU time, the second objective of the multi-objective study.

Example:
    >>> objective = FederatedObjective(config=config, split_csv=Path("split.csv"))
    >>> result = objective({"lr": 0.1, "rounds": 20, "client_fraction": 0.5}, never_prune)
    >>> result.extra["cpu_seconds"]
    3.2
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serhpo.config import complete_config
from serhpo.data import load_split
from serhpo.errors import UserError
from serhpo.features import FeatureCache
from serhpo.training import TrainingData
from serhpo.trial import EpochReporter, TrialResult, TrialStatus

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
    completed = complete_config(config)
    family = completed["federated"]["backbone"]
    if cache_dir is None:
        cache_dir = Path(completed["features"]["cache_dir"])
    split = load_split(split_csv, parts=parts, labels=config.get("target_labels"))
    return TrainingData(
        split=split, cache=FeatureCache(cache_dir, backbone=family, progress=True), backbone=family
    )


def fixed_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """``federated.model`` and ``federated.training``: what every trial starts from."""
    section = federated_section(config)
    return {**(section.get("model") or {}), **(section.get("training") or {})}


@dataclass
class FederatedObjective:
    """Federated training as a study's objective, built once per process (picklable).

    Attributes:
        config: the merged config (``seed``, ``target_labels``, ``features``, ``federated``).
        split_csv: the tuning corpus' split CSV; its train speakers are the clients.
        cache_dir: the feature cache root (default: config ``features.cache_dir``).
        num_cpus: CPUs the simulation may use (default: ``federated.simulation.num_cpus``).
    """

    config: dict[str, Any]
    split_csv: Path
    cache_dir: Path | None = None
    num_cpus: int | None = None
    _data: TrainingData | None = field(default=None, init=False, repr=False, compare=False)

    def __call__(self, params: dict[str, Any], report: EpochReporter) -> TrialResult:
        from serhpo.federated.simulation import fit_federated

        if self._data is None:
            self._data = federated_data(
                self.config, split_csv=self.split_csv, cache_dir=self.cache_dir
            )
        merged = {**fixed_params(self.config), **params}
        try:
            return fit_federated(
                merged,
                self._data,
                report=report,
                seed=int(self.config.get("seed", 0)),
                resources=simulation_resources(self.config, num_cpus=self.num_cpus),
            ).result
        except UserError:
            raise
        except Exception as error:  # the study goes on; the reason is logged with the trial
            log.exception("federated trial with params %s raised", params)
            return TrialResult(
                value=math.nan,
                status=TrialStatus.FAILED,
                reason=f"raised {type(error).__name__}: {error}",
            )

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_data": None}
