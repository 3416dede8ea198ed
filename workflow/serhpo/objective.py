"""From a config to training: the one place that sets up a stage's data, parameters and objective.

Every stage that trains (``serhpo train``, an HPO trial, the speaker-CV folds, the final
retraining, federated trials) builds its :class:`~serhpo.trainer.TrainingData` with
:func:`training_data` and its parameters with :func:`trial_params`, so that they read the
same keys the same way:

- the model family and its folder: config ``backbone.name`` and ``backbone.dir``, or the
  family a stage names (federated: ``federated.backbone``);
- the feature cache: config ``features.cache_dir`` unless the stage is given one;
- the labels: config ``target_labels``; the seed: config ``seed``;
- the parameters: config ``model`` and ``training`` (fixed keys), then the trial's or the
  best trial's parameters over them.

Example:
    >>> trial_params({"model": {"arch": "cnn"}, "training": {"lr": 1e-3}}, {"lr": 3e-4})
    {'arch': 'cnn', 'lr': 0.0003}
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from serhpo.config import complete_config
from serhpo.data import SplitData, load_split
from serhpo.features import FeatureCache
from serhpo.trainer import TrainingData, train_and_evaluate
from serhpo.trial import EpochReporter, LazyObjective, Objective, TrialResult

log = logging.getLogger(__name__)


def family_settings(
    config: Mapping[str, Any],
    *,
    cache_dir: Path | None = None,
    backbone_dir: Path | None = None,
) -> tuple[str, Path, Path | None]:
    """The model family, the feature cache root and the pretrained folder a stage uses.

    Explicit arguments win over config ``features.cache_dir`` and ``backbone.dir``.

    Example:
        >>> family_settings({"backbone": {"name": "egemaps"}})
        ('egemaps', PosixPath('results/features'), None)
    """
    completed = complete_config(config)
    if backbone_dir is None and completed["backbone"]["dir"]:
        backbone_dir = Path(completed["backbone"]["dir"])
    return (
        completed["backbone"]["name"],
        Path(cache_dir if cache_dir is not None else completed["features"]["cache_dir"]),
        backbone_dir,
    )


def config_seed(config: Mapping[str, Any]) -> int:
    """Config ``seed`` (the schema's default when absent).

    Example:
        >>> config_seed({"seed": 7})
        7
    """
    return complete_config(config)["seed"]


def trial_params(
    config: Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
    *,
    section: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A trial's parameters: the fixed ``model`` and ``training`` keys, then ``params`` over them.

    Args:
        config: the configuration.
        params: the trial's (or the best trial's) parameters.
        section: where ``model`` and ``training`` are read (default: the config itself;
            federated training reads its own ``federated`` section).

    Example:
        >>> trial_params({"training": {"epochs": 5}}, {"epochs": 2, "lr": 0.01})
        {'epochs': 2, 'lr': 0.01}
    """
    section = config if section is None else section
    return {
        **dict(section.get("model") or {}),
        **dict(section.get("training") or {}),
        **dict(params or {}),
    }


def training_data(
    config: Mapping[str, Any],
    *,
    split: Path | SplitData,
    parts: Sequence[str] = ("train", "valid"),
    fold: int | None = None,
    family: str | None = None,
    cache_dir: Path | None = None,
    backbone_dir: Path | None = None,
    cache: FeatureCache | None = None,
    root: Path | None = None,
) -> TrainingData:
    """The split's parts and the feature cache of the configured model family.

    Args:
        config: the configuration (``target_labels``, ``backbone``, ``features``).
        split: the split CSV (only ``parts`` are read, so other rows' files need not
            exist), or a split already read (a speaker-CV fold's).
        parts: the parts to read from a CSV.
        fold: validate on this fold of the CSV's ``fold`` column (``serhpo train --fold``).
        family: a model family other than config ``backbone.name`` (federated training's);
            its pretrained folder is then ``backbone_dir`` only, since config
            ``backbone.dir`` belongs to ``backbone.name``.
        cache_dir: the feature cache root (default: config ``features.cache_dir``).
        backbone_dir: the pretrained model's folder (default: config ``backbone.dir``).
        cache: a feature cache to share (speaker-CV folds share one); default a new one.
        root: the project root the CSV's paths are relative to (default: cwd).

    Example:
        >>> data = training_data({"backbone": {"name": "logmel"}},
        ...                      split=Path("results/splits/emodb.csv"))  # doctest: +SKIP
        >>> sorted(data.split.parts)  # doctest: +SKIP
        ['train', 'valid']
    """
    if family is None:
        family, cache_dir, backbone_dir = family_settings(
            config, cache_dir=cache_dir, backbone_dir=backbone_dir
        )
    else:
        _, cache_dir, _ = family_settings(config, cache_dir=cache_dir)
    if not isinstance(split, SplitData):
        split = load_split(
            split, parts=tuple(parts), labels=config.get("target_labels"), fold=fold, root=root
        )
    if cache is None:
        cache = FeatureCache(cache_dir, backbone=family, progress=True)
    return TrainingData(split=split, cache=cache, backbone=family, backbone_dir=backbone_dir)


def build_objective(
    config: Mapping[str, Any],
    *,
    split_csv: Path,
    cache_dir: Path | None = None,
    backbone_dir: Path | None = None,
    root: Path | None = None,
) -> LazyObjective:
    """Load a study's data once and return its objective.

    Reads config ``seed``, ``target_labels``, ``backbone.name``, ``model`` (the family's
    fixed parameters) and ``training`` (fixed training keys); a trial's params override
    both. Only the split's train and valid parts are read.

    Args:
        config: the pipeline configuration (a parsed config.yaml).
        split_csv: the split CSV.
        cache_dir: the feature cache root; default config ``features.cache_dir``.
        backbone_dir: the pretrained model's folder, for families that have one; default
            config ``backbone.dir``.
        root: the project root the CSV's paths are relative to (default: cwd).

    Returns:
        ``objective(params, report) -> TrialResult``, its data loaded (``objective.data``).
        A trial that raises anything but a :class:`UserError` is returned as ``failed``
        with the exception as its reason.

    Example:
        >>> objective = build_objective(config, split_csv=split)  # doctest: +SKIP
        >>> objective({"lr": 3e-4, "epochs": 4, "arch": "cnn"}, never_prune).ok  # doctest: +SKIP
        True
    """
    objective = trainer_objective(
        config, split_csv=split_csv, cache_dir=cache_dir, backbone_dir=backbone_dir, root=root
    )
    objective.loaded  # noqa: B018  # load now: a bad split is an error before the first trial
    return objective


def trainer_objective(
    config: Mapping[str, Any],
    *,
    split_csv: Path,
    cache_dir: Path | None = None,
    backbone_dir: Path | None = None,
    root: Path | None = None,
) -> LazyObjective:
    """The trainer's objective for ``serhpo hpo --objective trainer``, loaded on its first trial.

    Picklable: each worker process of a study loads the data once, on its first trial. (A
    speaker-CV fold's study uses :func:`serhpo.crossval.cv_objective` instead.)

    Args:
        config: the pipeline configuration.
        split_csv: the tuning corpus' split CSV.
        cache_dir: the feature cache root (default config ``features.cache_dir``).
        backbone_dir: the pretrained model's folder (default config ``backbone.dir``).
        root: the project root the CSV's paths are relative to (default: cwd).

    Example:
        >>> objective = trainer_objective(config, split_csv=split)  # doctest: +SKIP
        >>> objective({"lr": 1e-3, "epochs": 2}, never_prune).ok  # doctest: +SKIP
        True
    """
    return LazyObjective(
        functools.partial(
            _single_split_objective,
            dict(config),
            split_csv=split_csv,
            cache_dir=cache_dir,
            backbone_dir=backbone_dir,
            root=root,
        )
    )


class _SingleSplit:
    """Train on the split's train part and score its valid part: one trial."""

    def __init__(self, config: Mapping[str, Any], data: TrainingData) -> None:
        # Read once when the study loads, not on every trial.
        self.config, self.data, self.seed = config, data, config_seed(config)

    def __call__(self, params: dict[str, Any], report: EpochReporter) -> TrialResult:
        return train_and_evaluate(
            trial_params(self.config, params), self.data, report=report, seed=self.seed
        )


def _single_split_objective(
    config: Mapping[str, Any],
    *,
    split_csv: Path,
    cache_dir: Path | None,
    backbone_dir: Path | None,
    root: Path | None,
) -> Objective:
    data = training_data(
        config, split=split_csv, cache_dir=cache_dir, backbone_dir=backbone_dir, root=root
    )
    return _SingleSplit(config, data)
