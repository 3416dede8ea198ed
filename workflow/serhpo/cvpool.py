"""Pool the outer folds of a speaker cross-validation: the headline BCA with a speaker bootstrap.

``serhpo cv-pool`` reads one engine's fold predictions (``serhpo cv-fold``: one row per
held-out utterance, every speaker held out exactly once) and writes::

    results/cv/{engine}/pooled.json      BCA of all held-out predictions together, its 95 %
                                         interval from a bootstrap over SPEAKERS (clusters),
                                         the utterance bootstrap beside it, accuracy, macro-F1,
                                         per-class recall, confusion, per-fold BCA
    results/cv/{engine}/per_speaker.csv  speaker, fold, n, BCA, accuracy
    results/cv/{engine}/configs.csv      the configuration each outer fold's study chose

Utterances of one speaker are not independent (voice, recording session), so resampling
utterances understates the spread of a score over speakers. The speaker bootstrap draws
speakers with replacement, keeps each drawn speaker's utterances whole, and recomputes the
pooled BCA (mean recall over the classes present in the resample).

Example:
    $ serhpo cv-pool --predictions results/cv/optuna/fold-*/predictions.csv \\
        --summaries results/cv/optuna/fold-*/fold.json --engine optuna --folds 5 \\
        --out results/cv/optuna
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serhpo.config import add_config_arguments, read_stage_config
from serhpo.errors import UserError
from serhpo.evaluation import DEFAULT_RESAMPLES, score_predictions
from serhpo.metrics import balanced_accuracy
from serhpo.splits import LOSO, parse_folds

log = logging.getLogger(__name__)


def protocol_name(folds: int | str) -> str:
    """How the report names a cross-validation protocol.

    Example:
        >>> protocol_name(5), protocol_name("loso")
        ('speaker CV, 5 folds', 'leave-one-speaker-out')
    """
    folds = parse_folds(folds)
    return "leave-one-speaker-out" if folds == LOSO else f"speaker CV, {folds} folds"


def speaker_bootstrap_scores(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    speakers: Sequence[str],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """The BCA of each cluster-bootstrap resample: speakers drawn with replacement, kept whole.

    Each resample draws as many speakers as there are, with replacement, and pools the
    utterances of the drawn speakers (a speaker drawn twice counts twice); its BCA is the
    mean recall over the classes present in that pool.

    Example:
        >>> scores = speaker_bootstrap_scores([0, 1, 0, 1], [0, 1, 1, 1], ["a", "a", "b", "b"],
        ...                                   resamples=4, seed=0)
        >>> sorted(set(scores.round(2).tolist()))  # resamples of a, of b, or of both
        [0.5, 0.75, 1.0]
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    codes, uniques = pd.factorize(pd.Series(list(speakers), dtype=str))
    n_speakers = len(uniques)
    if len(y_true) == 0 or resamples < 1:
        return np.empty(0)
    classes = int(max(y_true.max(), y_pred.max())) + 1
    # confusion counts of each speaker, flattened: (speakers, classes * classes)
    per_speaker = np.zeros((n_speakers, classes * classes))
    np.add.at(per_speaker, (codes, y_true * classes + y_pred), 1)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_speakers, size=(resamples, n_speakers))
    offsets = np.arange(resamples)[:, None] * n_speakers
    times_drawn = np.bincount((draws + offsets).ravel(), minlength=resamples * n_speakers)
    counts = times_drawn.reshape(resamples, n_speakers) @ per_speaker
    counts = counts.reshape(resamples, classes, classes)
    support = counts.sum(axis=2)
    hits = np.diagonal(counts, axis1=1, axis2=2)
    recall = np.divide(hits, support, out=np.zeros(support.shape), where=support > 0)
    return recall.sum(axis=1) / (support > 0).sum(axis=1)


def speaker_bootstrap_bca(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    speakers: Sequence[str],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of the BCA from :func:`speaker_bootstrap_scores`.

    Example:
        >>> low, high = speaker_bootstrap_bca([0, 1, 0, 1], [0, 1, 1, 1], ["a", "a", "b", "b"])
        >>> low <= 0.75 <= high
        True
    """
    scores = speaker_bootstrap_scores(y_true, y_pred, speakers, resamples=resamples, seed=seed)
    if scores.size == 0:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(scores, [tail, 100.0 - tail])
    return float(low), float(high)


def pool_predictions(
    predictions: pd.DataFrame,
    summaries: Sequence[dict[str, Any]],
    *,
    engine: str,
    folds: int | str,
    labels: Sequence[str] = (),
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Pool every outer fold's held-out predictions of one engine.

    Args:
        predictions: the folds' predictions CSVs, concatenated.
        summaries: the folds' fold.json contents.
        engine: the engine.
        folds: config ``split.folds`` (names the protocol).
        labels: the class order (config ``target_labels``); labels found beyond it follow.
        resamples: bootstrap resamples.
        seed: the bootstrap's seed.

    Returns:
        The pooled scores (pooled.json), the per-speaker table and the per-fold configurations.

    Raises:
        UserError: a speaker held out in two folds, or an utterance predicted twice.

    Example:
        >>> pooled, speakers, configs = pool_predictions(predictions, summaries,
        ...     engine="optuna", folds=5)  # doctest: +SKIP
        >>> pooled["protocol"]  # doctest: +SKIP
        'speaker CV, 5 folds'
    """
    predictions = predictions.astype({"speaker": str, "utterance_id": str})
    twice = predictions.groupby("speaker")["fold"].nunique()
    if (twice > 1).any():
        raise UserError(
            f"speaker(s) {sorted(twice[twice > 1].index)} are held out in more than one outer "
            "fold; the fold predictions come from different splits. Rerun the folds."
        )
    if predictions["utterance_id"].duplicated().any():
        raise UserError(
            "an utterance is predicted in two outer folds: "
            f"{predictions.loc[predictions['utterance_id'].duplicated(), 'utterance_id'].iloc[0]}."
            " Rerun the folds from one split."
        )
    found = sorted(set(predictions["label"]) | set(predictions["predicted"]))
    labels = [*labels, *(label for label in found if label not in labels)]
    index = {label: i for i, label in enumerate(labels)}
    y_true = predictions["label"].map(index).to_numpy()
    y_pred = predictions["predicted"].map(index).to_numpy()
    scores = score_predictions(y_true, y_pred, labels=labels, resamples=resamples, seed=seed)
    absent = scores.pop("absent_labels")
    utterance_ci = scores.pop("bca_ci95")
    speakers = predictions["speaker"].to_numpy()
    low, high = speaker_bootstrap_bca(y_true, y_pred, speakers, resamples=resamples, seed=seed)
    per_speaker = pd.DataFrame(
        [
            {
                "engine": engine,
                "speaker": speaker,
                "fold": int(rows["fold"].iloc[0]),
                "n": len(rows),
                "bca": balanced_accuracy(
                    rows["label"].map(index).to_numpy(), rows["predicted"].map(index).to_numpy()
                ),
                "accuracy": float((rows["label"] == rows["predicted"]).mean()),
            }
            for speaker, rows in predictions.groupby("speaker", sort=True)
        ]
    )
    configs = pd.DataFrame(
        [
            {
                "engine": engine,
                "fold": summary["fold"],
                "trial": summary.get("trial"),
                "inner_bca": summary.get("inner_bca"),
                "held_out_bca": summary.get("held_out_bca"),
                "held_out_speakers": " ".join(summary.get("held_out_speakers", [])),
                **{f"param_{k}": v for k, v in (summary.get("params") or {}).items()},
            }
            for summary in sorted(summaries, key=lambda s: s["fold"])
        ]
    )
    fold_bca = {
        int(fold): balanced_accuracy(rows["label"].map(index), rows["predicted"].map(index))
        for fold, rows in predictions.groupby("fold")
    }
    pooled = {
        "engine": engine,
        "protocol": protocol_name(folds),
        "folds": parse_folds(folds),
        "n_folds": len(fold_bca),
        "n_speakers": int(predictions["speaker"].nunique()),
        **scores,
        "bca_ci95": [low, high],
        "ci_method": f"speaker (cluster) bootstrap, {resamples} resamples, seed {seed}",
        "bca_ci95_utterance_bootstrap": utterance_ci,
        "fold_bca": fold_bca,
        "mean_fold_bca": float(np.mean(list(fold_bca.values()))),
        "mean_inner_bca": float(configs["inner_bca"].mean()) if len(configs) else math.nan,
        "notes": [
            "BCA of every outer fold's held-out predictions pooled; each speaker is held out "
            "exactly once, scored by a model tuned (inner speaker folds) and retrained without "
            "it.",
            "bca_ci95 resamples speakers with replacement, each speaker's utterances kept "
            "whole; bca_ci95_utterance_bootstrap resamples utterances (narrower: it ignores "
            "that a speaker's utterances are alike).",
            *(
                [f"labels absent from the truth: {absent}; left out of BCA and macro-F1."]
                if absent
                else []
            ),
        ],
    }
    return pooled, per_speaker, configs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo cv-pool``."""
    parser.add_argument("--predictions", nargs="+", type=Path, required=True, help="fold CSVs")
    parser.add_argument("--summaries", nargs="+", type=Path, required=True, help="fold JSONs")
    parser.add_argument("--engine", required=True, help="the HPO engine whose folds are pooled")
    parser.add_argument("--folds", type=parse_folds, required=True, help="split.folds: k or loso")
    parser.add_argument("--out", type=Path, required=True, help="folder for the pooled files")
    add_config_arguments(parser)
    parser.add_argument("--bootstrap", type=int, help="resamples (default: config, else 1000)")
    parser.add_argument("--seed", type=int, help="bootstrap seed (default: config seed)")


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo cv-pool``: pool one engine's outer folds."""
    config = read_stage_config(args.config, args.config_json)
    resamples = args.bootstrap
    if resamples is None:
        resamples = int((config.get("evaluation") or {}).get("bootstrap", DEFAULT_RESAMPLES))
    seed = args.seed if args.seed is not None else int(config.get("seed", 0))
    predictions = pd.concat(
        [pd.read_csv(p, dtype={"speaker": str, "utterance_id": str}) for p in args.predictions],
        ignore_index=True,
    )
    summaries = [json.loads(Path(p).read_text()) for p in args.summaries]
    pooled, per_speaker, configs = pool_predictions(
        predictions,
        summaries,
        engine=args.engine,
        folds=args.folds,
        labels=config.get("target_labels") or (),
        resamples=resamples,
        seed=seed,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(pooled, indent=2, default=lambda v: v.item() if hasattr(v, "item") else v)
    (args.out / "pooled.json").write_text(text.replace("NaN", "null") + "\n")
    per_speaker.to_csv(args.out / "per_speaker.csv", index=False)
    configs.to_csv(args.out / "configs.csv", index=False)
    predictions.to_csv(args.out / "predictions.csv", index=False)
    low, high = pooled["bca_ci95"]
    log.info(
        "%s, %s: pooled BCA %.3f [%.3f, %.3f] (speaker bootstrap) over %d speakers, n=%d",
        args.engine,
        pooled["protocol"],
        pooled["bca"],
        low,
        high,
        pooled["n_speakers"],
        pooled["n"],
    )
    return 0
