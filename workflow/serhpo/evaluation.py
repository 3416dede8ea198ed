"""Score a final model on a corpus: in-corpus on the home test part, or zero-shot on all of it.

``serhpo evaluate`` writes ``results/eval/{model}/{corpus}.json``; ``{model}`` is an
engine's final model (``results/final/{engine}/model``) or ``pretrained``, the
backbone's own IEMOCAP head without any tuning (the paper's zero-shot row). The JSON
holds exactly the keys the report reads, plus ``notes``::

    model, corpus, protocol, part, zero_shot, n, labels, bca, bca_ci95, accuracy,
    macro_f1, per_class_recall, confusion, notes

- The home corpus (``corpora.<name>.role: tune``) is scored on its ``test`` part only:
  this stage is the one place the test part is read.
- A zero-shot corpus is scored on all its labelled utterances (after its label map).
- ``labels`` are the model's labels, followed by any target label found in the truth
  that the model cannot predict (the pretrained head's four outputs against EmoDB's
  seven). A label absent from the truth keeps its row in the confusion matrix (all
  zeros) and its recall is ``null``; BCA, macro-F1 and the interval use the labels
  present in the truth, and ``notes`` says which were absent.
- ``bca_ci95`` is a percentile bootstrap over utterances (``evaluation.bootstrap``
  resamples, seeded): each resample's BCA is scikit-learn's
  ``balanced_accuracy_score``, the mean recall over the classes present in that
  resample's truth.

Example:
    $ serhpo evaluate --model-dir results/final/optuna/model --model-name optuna \\
        --split results/splits/ravdess.csv --corpus ravdess --role zero_shot \\
        --protocol speaker --out results/eval/optuna/ravdess.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile
import torch
from tqdm import tqdm

from serhpo.config import add_config_arguments, read_stage_config
from serhpo.data import PARTS, Utterance, load_split, read_waveform
from serhpo.errors import UserError
from serhpo.final import (
    FinalModel,
    load_final_model,
    pretrained_final_model,
)
from serhpo.metrics import classification_scores

log = logging.getLogger(__name__)

#: The model name of the backbone's own head (no tuning).
PRETRAINED = "pretrained"

#: Keys of an evaluation JSON, in the order written (the report reads them).
EVAL_KEYS: tuple[str, ...] = (
    "model",
    "corpus",
    "protocol",
    "part",
    "zero_shot",
    "n",
    "labels",
    "bca",
    "bca_ci95",
    "accuracy",
    "macro_f1",
    "per_class_recall",
    "confusion",
    "notes",
)

ROLES = ("tune", "zero_shot")
PROTOCOLS = ("stratified", "speaker")
DEFAULT_RESAMPLES = 1000


def bootstrap_bca(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the BCA, resampling utterances with replacement.

    Each resample's BCA is what scikit-learn's ``balanced_accuracy_score`` gives for
    it: the mean recall over the classes present in the resample's truth, so a class
    that a resample happens to miss is left out of its mean rather than counted as
    recall 0. It is computed from per-resample confusion counts, all resamples at
    once (scikit-learn's function costs milliseconds per call).

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.
        resamples: number of bootstrap resamples.
        seed: seeds the resampling; the same seed gives the same interval.
        confidence: the interval's coverage.

    Returns:
        ``(low, high)``; ``(nan, nan)`` for no utterances or no resamples.

    Example:
        >>> low, high = bootstrap_bca([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], seed=0)
        >>> low <= 0.667 <= high
        True
    """
    scores = bootstrap_scores(y_true, y_pred, resamples=resamples, seed=seed)
    if scores.size == 0:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(scores, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_scores(
    y_true: Sequence[int], y_pred: Sequence[int], *, resamples: int, seed: int
) -> np.ndarray:
    """The BCA of each bootstrap resample (see :func:`bootstrap_bca`), in draw order.

    Resample ``r`` is ``rng.integers(0, n, size=(resamples, n))[r]`` with
    ``rng = numpy.random.default_rng(seed)``.

    Example:
        >>> bootstrap_scores([0, 1], [0, 1], resamples=3, seed=0).tolist()
        [1.0, 1.0, 1.0]
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    n = len(y_true)
    if n == 0 or resamples < 1:
        return np.empty(0)
    classes = int(max(y_true.max(), y_pred.max())) + 1
    cell = y_true * classes + y_pred  # the confusion cell of each utterance
    rng = np.random.default_rng(seed)
    scores = np.empty(resamples)
    chunk = max(1, 2_000_000 // n)  # bounds the index matrix' memory on large corpora
    for start in range(0, resamples, chunk):
        count = min(chunk, resamples - start)
        chosen = rng.integers(0, n, size=(count, n))
        offsets = np.arange(count)[:, None] * classes * classes
        counts = np.bincount((cell[chosen] + offsets).ravel(), minlength=count * classes**2)
        counts = counts.reshape(count, classes, classes)
        support = counts.sum(axis=2)
        hits = np.diagonal(counts, axis1=1, axis2=2)
        recall = np.divide(hits, support, out=np.zeros(support.shape), where=support > 0)
        scores[start : start + count] = recall.sum(axis=1) / (support > 0).sum(axis=1)
    return scores


def score_predictions(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    *,
    labels: Sequence[str],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """BCA with its bootstrap interval, accuracy, macro-F1, per-class recall and confusion.

    Args:
        y_true: true class indices into ``labels``.
        y_pred: predicted class indices into ``labels``.
        labels: class names; the confusion matrix' row and column order.
        resamples: bootstrap resamples for ``bca_ci95``.
        seed: the bootstrap's seed.

    Returns:
        ``n``, ``labels``, ``bca``, ``bca_ci95``, ``accuracy``, ``macro_f1``,
        ``per_class_recall`` (``None`` for a label absent from the truth),
        ``confusion`` (rows true, columns predicted) and ``absent_labels``.

    Example:
        >>> scores = score_predictions([0, 0, 1], [0, 1, 1], labels=["a", "b", "c"])
        >>> scores["bca"], scores["per_class_recall"]
        (0.75, {'a': 0.5, 'b': 1.0, 'c': None})
    """
    scores = classification_scores(y_true, y_pred, labels=labels)
    confusion = np.asarray(scores["confusion"], dtype=np.int64)
    support = confusion.sum(axis=1)
    recall = {
        label: (float(confusion[i, i] / support[i]) if support[i] else None)
        for i, label in enumerate(labels)
    }
    low, high = bootstrap_bca(y_true, y_pred, resamples=resamples, seed=seed)
    return {
        "n": int(len(np.asarray(y_true))),
        "labels": list(labels),
        "bca": scores["bca"],
        "bca_ci95": [low, high],
        "accuracy": scores["accuracy"],
        "macro_f1": scores["macro_f1"],
        "per_class_recall": recall,
        "confusion": confusion.tolist(),
        "absent_labels": [label for i, label in enumerate(labels) if not support[i]],
    }


def evaluation_labels(
    model_labels: Sequence[str], truth_labels: Sequence[str], *, target_labels: Sequence[str] = ()
) -> list[str]:
    """The labels of an evaluation: every label the model predicts or the truth holds.

    They come in ``target_labels`` order, so that every evaluation of a corpus shows its
    confusion matrix the same way; labels outside ``target_labels`` follow, the model's
    first, in its order, then the truth's, alphabetically.

    Example:
        >>> evaluation_labels(["neutral", "anger"], ["anger", "fear", "boredom"],
        ...                   target_labels=["anger", "boredom", "fear", "neutral"])
        ['anger', 'boredom', 'fear', 'neutral']
    """
    known = list(dict.fromkeys([*model_labels, *sorted(set(truth_labels) - set(model_labels))]))
    order = {label: index for index, label in enumerate(target_labels)}
    return sorted(known, key=lambda label: (order.get(label, len(order)), known.index(label)))


def _labels_per_part(split_csv: Path) -> dict[str, set[str]]:
    """The labels of each part's labelled rows (reads the CSV's text, never the audio)."""
    if not Path(split_csv).is_file():
        raise UserError(
            f"split CSV {split_csv} does not exist; expected the output of `serhpo split`. "
            "Run the split stage first (snakemake results/splits/<corpus>.csv)."
        )
    table = pd.read_csv(split_csv, dtype=str, keep_default_na=False)
    missing = [column for column in ("part", "label") if column not in table.columns]
    if missing:
        raise UserError(
            f"split CSV {split_csv} lacks column(s) {missing}; regenerate it with `serhpo split`."
        )
    table = table[table["label"] != ""]
    return {
        part: set(table.loc[table["part"] == part, "label"])
        for part in PARTS
        if (table["part"] == part).any()
    }


def _read_waveforms(utterances: Sequence[Utterance]) -> list[torch.Tensor]:
    waveforms = []
    for utterance in utterances:
        try:
            waveforms.append(read_waveform(utterance.path))
        except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
            raise UserError(
                f"cannot read {utterance.path} (utterance {utterance.utterance_id} of "
                f"{utterance.corpus}): {error}. Rerun the prepare stage for this corpus."
            ) from None
    return waveforms


def evaluate(
    final: FinalModel,
    *,
    split_csv: Path,
    model_name: str,
    role: str,
    protocol: str,
    corpus: str | None = None,
    target_labels: Sequence[str] = (),
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    batch_size: int = 8,
    root: Path | None = None,
) -> dict[str, Any]:
    """Score a model on one corpus' split and return the evaluation JSON's content.

    Args:
        final: the model (:func:`~serhpo.final.load_final_model` or
            :func:`~serhpo.final.pretrained_final_model`).
        split_csv: the corpus' split CSV.
        model_name: an engine's name or ``pretrained``.
        role: ``tune`` (the home corpus: its ``test`` part only) or ``zero_shot``
            (every labelled utterance).
        protocol: the split protocol of the home corpus (``split.strategy``).
        corpus: the corpus name; default the CSV's ``corpus`` column.
        target_labels: config ``target_labels`` (orders labels the model lacks).
        resamples: bootstrap resamples for ``bca_ci95``.
        seed: the bootstrap's seed.
        batch_size: utterances per forward pass.
        root: the project root the CSV's paths are relative to (default: cwd).

    Returns:
        A mapping with the keys of :data:`EVAL_KEYS`.

    Raises:
        UserError: a bad role or protocol, a truth label the evaluation cannot place,
            unreadable audio.

    Example:
        >>> result = evaluate(load_final_model(Path("results/final/optuna/model")),
        ...     split_csv=Path("results/splits/emodb.csv"), model_name="optuna",
        ...     role="tune", protocol="speaker")  # doctest: +SKIP
        >>> result["part"], result["zero_shot"]  # doctest: +SKIP
        ('test', False)
    """
    if role not in ROLES:
        raise UserError(
            f"corpus role {role!r}; expected one of {list(ROLES)} (corpora.<name>.role)."
        )
    if protocol not in PROTOCOLS:
        raise UserError(
            f"protocol {protocol!r}; expected one of {list(PROTOCOLS)} (config split.strategy)."
        )
    labels_per_part = _labels_per_part(split_csv)
    if role == "tune" and "test" not in labels_per_part:
        raise UserError(
            f"split CSV {split_csv} has no labelled test part; the home corpus is scored on "
            "its test part only. Check split.test_fraction in config.yaml and rerun the split."
        )
    parts = ["test"] if role == "tune" else list(labels_per_part)
    truth_labels = sorted(set().union(*(labels_per_part[part] for part in parts)))
    labels = evaluation_labels(final.labels, truth_labels, target_labels=target_labels)
    split = load_split(split_csv, parts=parts, labels=labels, root=root)
    utterances = [u for part in parts for u in split.parts[part]]
    corpora = sorted({u.corpus for u in utterances})
    corpus = corpus or (corpora[0] if len(corpora) == 1 else Path(split_csv).stem)
    index = {label: i for i, label in enumerate(labels)}
    y_true = np.array([index[u.label] for u in utterances], dtype=np.int64)
    output_to_label = np.array([index[label] for label in final.labels], dtype=np.int64)
    y_pred = np.empty(len(utterances), dtype=np.int64)
    for start in tqdm(
        range(0, len(utterances), batch_size),
        desc=f"evaluate {model_name} on {corpus}",
        unit="batch",
    ):
        chunk = utterances[start : start + batch_size]
        logits = final.logits(_read_waveforms(chunk), batch_size=batch_size)
        y_pred[start : start + len(chunk)] = output_to_label[logits.argmax(dim=1).numpy()]
    scores = score_predictions(y_true, y_pred, labels=labels, resamples=resamples, seed=seed)
    absent = scores.pop("absent_labels")
    unpredictable = [label for label in labels if label not in final.labels]
    notes = [
        f"BCA is the mean recall over the {len(labels) - len(absent)} labels present in the "
        f"truth; bca_ci95 is a percentile bootstrap over utterances ({resamples} resamples, "
        f"seed {seed})."
    ]
    if absent:
        notes.append(
            f"labels absent from {corpus}'s {'test part' if role == 'tune' else 'utterances'}: "
            f"{absent}; their recall is null and they are left out of BCA and macro-F1."
        )
    if unpredictable:
        notes.append(
            f"the model cannot predict {unpredictable} (its outputs are {list(final.labels)}); "
            "these labels count as misclassified."
        )
    result = {
        "model": model_name,
        "corpus": corpus,
        "protocol": protocol,
        "part": "test" if role == "tune" else "all",
        # The untuned head never saw any corpus of ours, the home corpus included.
        "zero_shot": role != "tune" or PRETRAINED in (model_name, final.metadata.get("model")),
        **scores,
        "notes": notes,
    }
    return {key: result[key] for key in EVAL_KEYS}


def write_evaluation(result: Mapping[str, Any], path: Path) -> None:
    """Write an evaluation as JSON (NaN written as ``null``).

    Example:
        >>> write_evaluation(result, Path("results/eval/optuna/emodb.json"))  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cleaned = {
        key: ([_nan_to_none(v) for v in value] if key == "bca_ci95" else _nan_to_none(value))
        for key, value in result.items()
    }
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(cleaned, indent=2) + "\n")
    partial.replace(path)


def _nan_to_none(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


# ---------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo evaluate``."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model-dir", type=Path, help="a model folder written by `serhpo retrain`")
    which.add_argument(
        "--pretrained",
        type=Path,
        metavar="BACKBONE_DIR",
        help="evaluate this backbone folder's own IEMOCAP head, untuned (model 'pretrained')",
    )
    parser.add_argument("--split", type=Path, required=True, help="the corpus' split CSV")
    parser.add_argument("--out", type=Path, required=True, help="evaluation JSON to write")
    parser.add_argument(
        "--model-name",
        help="model name in the JSON (default: the model folder's engine, or 'pretrained')",
    )
    parser.add_argument("--corpus", help="corpus name (default: the split CSV's corpus column)")
    parser.add_argument(
        "--role", choices=ROLES, help="tune: score the test part; zero_shot: all (default: config)"
    )
    parser.add_argument(
        "--protocol", choices=PROTOCOLS, help="the split protocol (default: config split.strategy)"
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--bootstrap",
        type=int,
        help=f"bootstrap resamples for bca_ci95 (default: config, else {DEFAULT_RESAMPLES})",
    )
    parser.add_argument("--seed", type=int, help="bootstrap seed (default: config seed)")
    parser.add_argument("--batch-size", type=int, default=8, help="utterances per forward pass")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: the model's training threads)"
    )
    parser.add_argument(
        "--maxlen",
        type=int,
        help="with --pretrained: truncate utterances to this many samples (default: whole)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo evaluate``: score one model on one corpus, write the JSON."""
    config = read_stage_config(args.config, args.config_json)
    split_csv: Path = args.split
    if args.pretrained is not None:
        final = pretrained_final_model(args.pretrained, maxlen=args.maxlen)
        model_name = args.model_name or PRETRAINED
    else:
        final = load_final_model(args.model_dir)
        model_name = args.model_name or final.metadata.get("engine") or args.model_dir.parent.name
    if args.threads is not None:
        final.threads = args.threads
    corpus = args.corpus
    role = args.role
    if role is None:
        corpus_name = corpus or split_csv.stem
        entry = (config.get("corpora") or {}).get(corpus_name)
        if not entry:
            raise UserError(
                f"no --role given and config has no corpora.{corpus_name} entry; pass --role "
                "tune (score the test part) or --role zero_shot (score every utterance)."
            )
        role = entry.get("role", "zero_shot")
    protocol = args.protocol or (config.get("split") or {}).get("strategy", "stratified")
    evaluation_config = config.get("evaluation") or {}
    resamples = args.bootstrap
    if resamples is None:
        resamples = int(evaluation_config.get("bootstrap", DEFAULT_RESAMPLES))
    seed = args.seed if args.seed is not None else int(config.get("seed", 0))
    result = evaluate(
        final,
        split_csv=split_csv,
        model_name=model_name,
        role=role,
        protocol=protocol,
        corpus=corpus,
        target_labels=config.get("target_labels") or (),
        resamples=resamples,
        seed=seed,
        batch_size=args.batch_size,
    )
    write_evaluation(result, args.out)
    low, high = result["bca_ci95"]
    log.info(
        "%s on %s (%s, n=%d): BCA %.3f [%.3f, %.3f], accuracy %.3f, macro-F1 %.3f",
        model_name,
        result["corpus"],
        "test part" if result["part"] == "test" else "all utterances",
        result["n"],
        result["bca"],
        low,
        high,
        result["accuracy"],
        result["macro_f1"],
    )
    return 0
