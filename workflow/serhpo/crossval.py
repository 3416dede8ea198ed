"""Speaker cross-validation: inner-fold objective for an outer fold's study, and its scoring.

With ``split.strategy: speaker`` and ``split.folds`` (k or ``loso``), the split CSV's ``fold``
column holds outer folds that hold out whole speakers, every speaker exactly once. For outer
fold ``f``:

1. ``serhpo hpo --outer-fold f`` runs a study on the training speakers only (``fold != f``).
   Each trial trains on the training speakers of every inner speaker fold
   (:func:`serhpo.splits.inner_speaker_folds`, ``split.inner_folds``, from the seed) and scores
   that inner fold's held-out speakers; the trial's value is the mean inner-fold BCA and
   trials.csv keeps the per-fold scores (column ``fold_values``). The held-out speakers of ``f``
   are never read by the study.
2. ``serhpo cv-fold`` retrains the study's best configuration on all training speakers of ``f``
   and scores its held-out speakers once, writing one prediction per utterance.
3. ``serhpo cv-pool`` (:mod:`serhpo.cvpool`) pools every outer fold's predictions.

**Pruning inside the objective.** The study's reporter is called once per inner fold, with
step = inner folds done and score = the running mean of their BCAs (the trial's
``history``). Every trial is scored on the same inner folds in the same order, so after step
``s`` a trial is compared with the completed trials' means over the same speakers: a paired
comparison, and a mean over more speakers as it goes. Reporting per epoch would compare one
fold's epochs with another trial's, or need the folds trained in lockstep; per fold, a
pruned trial still saves the folds it does not train. The median rule then stops a trial only
when its running mean is below the completed trials' median by more than
``hpo.pruning.margin`` (:mod:`serhpo.hpo.pruning`).

Example:
    >>> objective = build_cv_objective(config, split_csv=Path("results/splits/emodb.csv"),
    ...                                outer_fold=0, inner_folds=3)  # doctest: +SKIP
    >>> result = objective({"lr": 1e-3, "epochs": 5}, lambda step, score: False)  # doctest: +SKIP
    >>> result.value == sum(result.extra["fold_values"]) / 3  # doctest: +SKIP
    True
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import statistics
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from serhpo.config import add_config_arguments, read_stage_config
from serhpo.data import Preprocessing, SplitData, check_labels, utterances_of
from serhpo.errors import UserError
from serhpo.features import FeatureCache
from serhpo.hpo.study_files import read_best
from serhpo.metrics import balanced_accuracy
from serhpo.objective import config_seed, family_settings, training_data, trial_params
from serhpo.splits import inner_speaker_folds, parse_folds
from serhpo.trainer import fit, predict_logits, torch_settings
from serhpo.trial import (
    EpochReporter,
    LazyObjective,
    TrialResult,
    TrialStatus,
    failed_on_error,
    never_prune,
)

log = logging.getLogger(__name__)

#: Default number of inner speaker folds (config ``split.inner_folds``).
DEFAULT_INNER_FOLDS = 3
#: Columns of a fold's predictions CSV, before one ``p_<label>`` probability per label.
PREDICTION_COLUMNS = ("engine", "fold", "utterance_id", "speaker", "label", "predicted")


def read_fold_table(split_csv: Path) -> pd.DataFrame:
    """The labelled rows of a split CSV with outer folds (``fold`` column), as text.

    Raises:
        UserError: the file is missing or has no ``fold`` column.

    Example:
        >>> sorted(read_fold_table(Path("results/splits/emodb.csv"))["fold"].unique())
        ... # doctest: +SKIP
        [0, 1, 2, 3, 4]
    """
    split_csv = Path(split_csv)
    if not split_csv.is_file():
        raise UserError(
            f"split CSV {split_csv} does not exist; expected the output of `serhpo split`. "
            "Run the split stage first (snakemake results/splits/<corpus>.csv)."
        )
    table = pd.read_csv(
        split_csv, dtype={"utterance_id": str, "speaker": str, "label": str}, keep_default_na=False
    )
    if "fold" not in table.columns or (table["fold"].astype(str) == "").all():
        raise UserError(
            f"split CSV {split_csv} has no 'fold' column; speaker cross-validation needs outer "
            "folds. Set split.strategy: speaker and split.folds (k or loso) and rerun the split."
        )
    table = table[table["label"] != ""].copy()
    table["fold"] = table["fold"].astype(int)
    return table.reset_index(drop=True)


def _check_outer_fold(table: pd.DataFrame, outer_fold: int, split_csv: Path) -> None:
    folds = sorted(table["fold"].unique().tolist())
    if outer_fold not in folds:
        raise UserError(
            f"outer fold {outer_fold} is not in split CSV {split_csv}; folds found: {folds}."
        )


def inner_fold_splits(
    split_csv: Path,
    *,
    outer_fold: int,
    inner_folds: int | str = DEFAULT_INNER_FOLDS,
    seed: int = 0,
    labels: tuple[str, ...] | list[str] | None = None,
    root: Path | None = None,
) -> list[SplitData]:
    """The inner folds of an outer fold: one SplitData (``train``/``valid``) per inner fold.

    Only the outer fold's training speakers are read; its held-out speakers are not even
    checked for existence.

    Args:
        split_csv: the split CSV with outer folds.
        outer_fold: the outer fold whose training speakers are divided.
        inner_folds: k >= 2 or ``"loso"`` (config ``split.inner_folds``).
        seed: shuffles the speakers into inner folds (config ``seed``).
        labels: the class order (config ``target_labels``); default the sorted labels found.
        root: the project root the CSV's paths are relative to (default: cwd).

    Example:
        >>> folds = inner_fold_splits(Path("results/splits/emodb.csv"), outer_fold=0)
        ... # doctest: +SKIP
        >>> [len(f.parts["valid"]) for f in folds]  # doctest: +SKIP
        [142, 140, 146]
    """
    table = read_fold_table(split_csv)
    _check_outer_fold(table, outer_fold, split_csv)
    training = table[table["fold"] != outer_fold]
    inner = inner_speaker_folds(training, inner_folds=inner_folds, seed=seed)
    labels = tuple(labels) if labels is not None else tuple(sorted(training["label"].unique()))
    check_labels(training, labels, split_csv)
    utterances = dict(
        zip(training.index, utterances_of(training, root=root), strict=True)
    )  # read once, shared by the inner folds (and so by the feature cache's memory)
    splits = []
    for number in sorted(inner.unique()):
        parts = {
            "train": [utterances[i] for i in training.index[inner != number]],
            "valid": [utterances[i] for i in training.index[inner == number]],
        }
        splits.append(SplitData(labels=labels, parts=parts, source=Path(split_csv)))
    return splits


def outer_fold_split(
    split_csv: Path,
    *,
    outer_fold: int,
    labels: tuple[str, ...] | list[str] | None = None,
    root: Path | None = None,
) -> SplitData:
    """An outer fold as a SplitData: ``train`` (its training speakers), ``test`` (held out).

    Example:
        >>> data = outer_fold_split(Path("results/splits/emodb.csv"), outer_fold=2)
        ... # doctest: +SKIP
        >>> {u.speaker for u in data.parts["test"]}  # doctest: +SKIP
        {'09', '14'}
    """
    table = read_fold_table(split_csv)
    _check_outer_fold(table, outer_fold, split_csv)
    labels = tuple(labels) if labels is not None else tuple(sorted(table["label"].unique()))
    check_labels(table, labels, split_csv)
    held_out = table["fold"] == outer_fold
    parts = {
        "train": utterances_of(table[~held_out], root=root),
        "test": utterances_of(table[held_out], root=root),
    }
    return SplitData(labels=labels, parts=parts, source=Path(split_csv))


def inner_folds_setting(config: Mapping[str, Any]) -> int | str:
    """Config ``split.inner_folds`` (default 3), checked.

    Example:
        >>> inner_folds_setting({"split": {"inner_folds": "loso"}})
        'loso'
    """
    value = (config.get("split") or {}).get("inner_folds", DEFAULT_INNER_FOLDS)
    return parse_folds(value, key="split.inner_folds")


def build_cv_objective(
    config: Mapping[str, Any],
    *,
    split_csv: Path,
    outer_fold: int,
    inner_folds: int | str | None = None,
    cache_dir: Path | None = None,
    backbone_dir: Path | None = None,
    root: Path | None = None,
) -> Callable[[dict[str, Any], EpochReporter], TrialResult]:
    """Load an outer fold's inner folds and the feature cache once; return the CV objective.

    Reads config ``seed``, ``target_labels``, ``backbone``, ``model``, ``training`` and
    ``split.inner_folds`` (unless ``inner_folds`` is given). Every inner fold shares one
    :class:`~serhpo.features.FeatureCache`, so each utterance's features are loaded once.

    Returns:
        ``objective(params, report) -> TrialResult``: value = mean inner-fold BCA (each
        inner fold's BCA is its last epoch's, as in a single-split trial);
        ``extra["fold_values"]`` the per-fold BCAs; ``history`` the running mean after each
        inner fold. ``report(step, running_mean)`` is called after each inner fold; True
        stops the trial (``pruned``, value = the running mean so far). A fold that fails
        (diverged, collapsed) fails the trial with the fold named.

    Example:
        >>> objective = build_cv_objective(config, split_csv=split, outer_fold=1)
        ... # doctest: +SKIP
        >>> objective({"lr": 1e-3, "epochs": 3}, never_prune).extra["fold_values"]
        ... # doctest: +SKIP
        [0.71, 0.64, 0.69]
    """
    inner_folds = inner_folds_setting(config) if inner_folds is None else inner_folds
    seed = config_seed(config)
    splits = inner_fold_splits(
        split_csv,
        outer_fold=outer_fold,
        inner_folds=inner_folds,
        seed=seed,
        labels=config.get("target_labels"),
        root=root,
    )
    backbone, cache_dir, _ = family_settings(config, cache_dir=cache_dir)
    cache = FeatureCache(cache_dir, backbone=backbone, progress=True)  # one for every fold
    folds = [
        training_data(
            config, split=split, cache=cache, cache_dir=cache_dir, backbone_dir=backbone_dir
        )
        for split in splits
    ]
    log.info(
        "outer fold %d: %d inner folds of %d training speakers",
        outer_fold,
        len(folds),
        len({u.speaker for u in splits[0].parts["train"] + splits[0].parts["valid"]}),
    )

    def objective(params: dict[str, Any], report: EpochReporter = never_prune) -> TrialResult:
        merged = trial_params(config, params)
        scores: list[float] = []
        running: list[float] = []
        extra: dict[str, Any] = {"fold_values": scores, "seconds_train": 0.0, "epochs_run": 0}

        def result(status: TrialStatus, reason: str = "") -> TrialResult:
            extra["seconds_train"] = round(float(extra["seconds_train"]), 3)
            value = math.nan if status == TrialStatus.FAILED or not scores else running[-1]
            return TrialResult(
                value=value, status=status, reason=reason, history=list(running), extra=extra
            )

        for number, data in enumerate(folds):
            # A fold that raises fails the trial ("inner fold 2: raised ..."); the study goes on.
            fold_result = failed_on_error(
                lambda data=data: fit(merged, data, seed=seed).result,
                what=f"inner fold {number} with params {params}",
            )
            extra["seconds_train"] += float(fold_result.extra.get("seconds_train", 0.0))
            extra["epochs_run"] += int(fold_result.extra.get("epochs_run", 0))
            if fold_result.status == TrialStatus.FAILED:
                return result(TrialStatus.FAILED, f"inner fold {number}: {fold_result.reason}")
            scores.append(float(fold_result.value))
            running.append(statistics.fmean(scores))
            if report(number + 1, running[-1]):
                return result(
                    TrialStatus.PRUNED,
                    f"pruned after inner fold {number + 1} of {len(folds)} "
                    f"(mean BCA {running[-1]:.3f})",
                )
        return result(TrialStatus.COMPLETE)

    objective.folds = folds  # type: ignore[attr-defined]  # for callers and tests
    return objective


def cv_objective(
    config: Mapping[str, Any],
    *,
    split_csv: Path,
    outer_fold: int,
    inner_folds: int | str | None = None,
    cache_dir: Path | None = None,
    backbone_dir: Path | None = None,
    root: Path | None = None,
) -> LazyObjective:
    """:func:`build_cv_objective` for ``serhpo hpo --outer-fold``, loaded on its first trial.

    Picklable: each worker process of the fold's study loads its inner folds once.

    Example:
        >>> objective = cv_objective(config, split_csv=split, outer_fold=0)  # doctest: +SKIP
    """
    return LazyObjective(
        functools.partial(
            build_cv_objective,
            dict(config),
            split_csv=split_csv,
            outer_fold=outer_fold,
            inner_folds=inner_folds,
            cache_dir=cache_dir,
            backbone_dir=backbone_dir,
            root=root,
        )
    )


# ---------------------------------------------------------------- retrain and score a fold


def retrain_and_score_fold(
    config: Mapping[str, Any],
    *,
    best: Mapping[str, Any],
    split_csv: Path,
    outer_fold: int,
    engine: str,
    cache_dir: Path | None = None,
    backbone_dir: Path | None = None,
    root: Path | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Retrain an outer fold's best configuration on its training speakers; score its held-out.

    The held-out speakers are scored once, through the same feature cache as the trials (with
    ``normalise: corpus`` or ``speaker``, standardised by their own statistics, as evaluation
    does).

    Returns:
        The predictions (one row per held-out utterance: :data:`PREDICTION_COLUMNS` and a
        ``p_<label>`` probability per label) and a summary (fold, chosen parameters, inner
        BCA, speakers, the fold's held-out BCA).

    Raises:
        UserError: the retraining diverged or collapsed.

    Example:
        >>> predictions, summary = retrain_and_score_fold(config, best=best,
        ...     split_csv=split, outer_fold=0, engine="optuna")  # doctest: +SKIP
        >>> summary["held_out_speakers"]  # doctest: +SKIP
        ['03', '10']
    """
    seed = config_seed(config)
    split = outer_fold_split(
        split_csv, outer_fold=outer_fold, labels=config.get("target_labels"), root=root
    )
    data = training_data(config, split=split, cache_dir=cache_dir, backbone_dir=backbone_dir)
    params = trial_params(config, best["params"])
    outcome = fit(params, data, seed=seed, train_part="train", valid_part=None)
    if outcome.result.status == TrialStatus.FAILED:
        raise UserError(
            f"retraining {engine}'s best configuration of outer fold {outer_fold} failed: "
            f"{outcome.result.reason}. Its inner folds scored it; rerun with another seed or "
            "pick another configuration from the fold's trials.csv."
        )
    held_out = split.parts["test"]
    model = outcome.model
    feature = model.frozen_feature(model.stage)
    items = data.cache.get_many(
        feature,
        held_out,
        Preprocessing(maxlen=outcome.config.maxlen, padding=outcome.config.padding),
    )
    mode = outcome.config.normalise
    if mode != "none":  # as in training and evaluation: the held-out speakers' own statistics
        from serhpo.normalisation import normalise_items

        items = normalise_items(items, held_out, mode=mode, sequence=feature.sequence)
    with torch_settings(threads=outcome.config.threads):
        logits = predict_logits(model, items, batch_size=outcome.config.eval_batch_size)
    probabilities = torch.softmax(logits, dim=1).numpy()
    predicted = probabilities.argmax(axis=1)
    labels = split.labels
    predictions = pd.DataFrame(
        {
            "engine": engine,
            "fold": outer_fold,
            "utterance_id": [u.utterance_id for u in held_out],
            "speaker": [u.speaker for u in held_out],
            "label": [u.label for u in held_out],
            "predicted": [labels[i] for i in predicted],
            **{f"p_{label}": probabilities[:, i].round(6) for i, label in enumerate(labels)},
        }
    )
    truth = split.targets("test")
    summary = {
        "engine": engine,
        "fold": outer_fold,
        "trial": best.get("trial"),
        "inner_bca": float(best["value"]),
        "params": dict(best["params"]),
        "seed": seed,
        "n_train": len(split.parts["train"]),
        "n_test": len(held_out),
        "training_speakers": sorted({u.speaker for u in split.parts["train"]}),
        "held_out_speakers": sorted({u.speaker for u in held_out}),
        "held_out_bca": balanced_accuracy(truth, predicted),
        "epochs": outcome.config.epochs,
        "seconds": outcome.result.extra.get("seconds"),
    }
    return predictions, summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo cv-fold``."""
    parser.add_argument("--best", type=Path, required=True, help="the fold study's best.yaml")
    parser.add_argument("--split", type=Path, required=True, help="split CSV with outer folds")
    parser.add_argument("--fold", type=int, required=True, help="the outer fold")
    parser.add_argument("--engine", required=True, help="the engine (a column of the output)")
    parser.add_argument("--predictions", type=Path, required=True, help="predictions CSV")
    parser.add_argument("--summary", type=Path, required=True, help="fold summary JSON")
    add_config_arguments(parser)
    parser.add_argument("--cache-dir", type=Path, help="feature cache root (default: config)")
    parser.add_argument("--backbone-dir", type=Path, help="the pretrained model's folder")


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo cv-fold``: retrain the fold's best configuration, score its held-out."""
    config = read_stage_config(args.config, args.config_json)
    predictions, summary = retrain_and_score_fold(
        config,
        best=read_best(args.best, rule="hpo_cv"),
        split_csv=args.split,
        outer_fold=args.fold,
        engine=args.engine,
        cache_dir=args.cache_dir,
        backbone_dir=args.backbone_dir,
    )
    args.predictions.parent.mkdir(parents=True, exist_ok=True)
    predictions.to_csv(args.predictions, index=False)
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    args.summary.write_text(json.dumps(summary, indent=2, default=_plain) + "\n")
    log.info(
        "%s outer fold %d: inner BCA %.4f, held-out speakers %s BCA %.4f (n=%d)",
        args.engine,
        args.fold,
        summary["inner_bca"],
        summary["held_out_speakers"],
        summary["held_out_bca"],
        summary["n_test"],
    )
    return 0


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)
