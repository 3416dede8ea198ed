"""Score a final model on a corpus: in-corpus on the home test part, or zero-shot on all of it.

``serhpo evaluate`` writes ``results/eval/{model}/{corpus}.json``; ``{model}`` is an
engine's final model (``results/final/{engine}/model``) or ``pretrained``, the
backbone's own IEMOCAP head without any tuning (the paper's zero-shot row). The JSON
holds exactly the keys the report reads, plus ``notes``::

    model, corpus, protocol, part, zero_shot, label_set, chance, n, labels, bca, bca_ci95,
    accuracy, macro_f1, per_class_recall, confusion, unrestricted, normalise, loudness,
    features, notes

- The home corpus (``corpora.<name>.role: tune``) is scored on its ``test`` part only:
  this stage is the one place the test part is read.
- A zero-shot corpus is scored on all its labelled utterances (after its label map).
- ``labels`` are the model's labels, followed by any target label found in the truth
  that the model cannot predict (the pretrained head's four outputs against EmoDB's
  seven). A label absent from the truth keeps its row in the confusion matrix (all
  zeros) and its recall is ``null``; BCA, macro-F1 and the interval use the labels
  present in the truth, and ``notes`` says which were absent.
- Zero-shot, by default (``evaluation.zero_shot_labels: shared``), the scores are those on
  the labels the two corpora share: the utterances whose label the model knows, with the
  argmax over those labels' outputs only (the other logits masked), so a seven-way model
  is not penalised on a six-label corpus for an emotion the corpus never holds.
  ``label_set`` says which (``shared`` or ``all``), ``chance`` is ``1 / len(labels)`` of
  the set argmaxed over, and ``unrestricted`` keeps the score over every output and
  every utterance beside it (``null`` in-corpus, where the two are one).
- Frozen features come from the feature cache (``features.cache_dir``), the entries the
  trials use: models that share a frozen feature and preprocessing compute a corpus'
  features once. ``features`` counts the entries read and computed.
- When the model was trained with ``normalise: corpus`` or ``speaker`` (its training
  config), the scored corpus' features are standardised with that corpus' (or speaker's)
  own statistics, never its labels; ``normalise`` names the mode. ``loudness`` names the
  level normalisation of preparation (config ``audio.loudness``).
- ``bca_ci95`` is a percentile bootstrap over utterances (``evaluation.bootstrap``
  resamples, seeded): each resample's BCA is scikit-learn's
  ``balanced_accuracy_score``, the mean recall over the classes present in that
  resample's truth.

One call scores a model on several corpora (``--split``, ``--corpus``, ``--role`` and ``--out``
once per corpus, in the same order): the model, torch and the backbone load once, which is
most of a small evaluation's time. The workflow runs one such job per model.

Example:
    $ serhpo evaluate --model-dir results/final/optuna/model --model-name optuna \\
        --split results/splits/emodb.csv results/splits/ravdess.csv --corpus emodb ravdess \\
        --role tune zero_shot --protocol speaker \\
        --out results/eval/optuna/emodb.json results/eval/optuna/ravdess.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from serhpo.config import add_config_arguments, read_stage_config, schema_default, schema_node
from serhpo.errors import UserError
from serhpo.metrics import classification_scores

if TYPE_CHECKING:  # torch and the models load where a model is scored: cv-pool needs neither
    import torch

    from serhpo.data import Utterance
    from serhpo.features import FeatureCache
    from serhpo.final import FinalModel

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
    "label_set",
    "chance",
    "n",
    "labels",
    "bca",
    "bca_ci95",
    "accuracy",
    "macro_f1",
    "per_class_recall",
    "confusion",
    "unrestricted",
    "normalise",
    "loudness",
    "features",
    "notes",
)

#: Keys of the ``unrestricted`` score of a zero-shot evaluation.
UNRESTRICTED_KEYS: tuple[str, ...] = (
    "label_set",
    "chance",
    "n",
    "labels",
    "bca",
    "bca_ci95",
    "accuracy",
    "macro_f1",
    "confusion",
)

ROLES = ("tune", "zero_shot")
#: Values of ``evaluation.zero_shot_labels``.
LABEL_SETS = ("shared", "all")
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
    from serhpo.data import PARTS

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


def shared_labels(
    labels: Sequence[str], model_labels: Sequence[str], truth_labels: Sequence[str]
) -> list[str]:
    """The labels of ``labels`` that both the model predicts and the truth holds, in order.

    Example:
        >>> shared_labels(["anger", "boredom", "fear"], ["anger", "boredom"], ["anger", "fear"])
        ['anger']
    """
    return [label for label in labels if label in model_labels and label in truth_labels]


def describe_loudness(audio: Mapping[str, Any] | None) -> str:
    """The level normalisation of preparation in words (config ``audio.loudness``).

    Example:
        >>> describe_loudness({"loudness": {"enabled": True, "target_lufs": -23, "peak_dbfs": -1}})
        '-23 LUFS (peak limit -1 dBFS)'
    """
    loudness = (audio or {}).get("loudness") or {}
    if not loudness.get("enabled"):
        return "off"
    target = loudness.get("target_lufs", schema_default("audio.loudness.target_lufs"))
    peak = loudness.get("peak_dbfs", schema_default("audio.loudness.peak_dbfs"))
    return f"{target:g} LUFS (peak limit {peak:g} dBFS)"


def corpus_logits(
    final: FinalModel,
    utterances: Sequence[Utterance],
    *,
    cache: FeatureCache | None = None,
    normalise: str = "none",
    batch_size: int = 8,
    corpus: str = "",
) -> torch.Tensor:
    """The model's logits for every utterance, frozen features through ``cache``.

    With ``normalise`` other than ``none`` the features of all ``utterances`` are
    standardised together, per corpus or per speaker, with their own statistics
    (:func:`serhpo.normalisation.normalise_items`); otherwise they are scored in chunks.

    Raises:
        UserError: an utterance's audio cannot be read.

    Example:
        >>> corpus_logits(final, utterances, cache=cache).shape  # doctest: +SKIP
        torch.Size([120, 7])
    """
    import soundfile
    import torch
    from tqdm import tqdm

    from serhpo.normalisation import normalise_items

    chunk = len(utterances) if normalise != "none" else max(64, batch_size)
    feature = final.model.frozen_feature(final.model.stage)
    outputs = []
    for start in tqdm(
        range(0, len(utterances), max(1, chunk)), desc=f"evaluate on {corpus}", unit="chunk"
    ):
        part = list(utterances[start : start + chunk])
        try:
            items = final.feature_items(part, cache=cache)
        except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
            raise UserError(
                f"cannot read the audio of {corpus} ({error}). Rerun the prepare stage for "
                "this corpus."
            ) from None
        items = normalise_items(items, part, mode=normalise, sequence=feature.sequence)
        outputs.append(final.logits_of_items(items, batch_size=batch_size))
    if not outputs:
        return torch.empty(0, len(final.labels))
    return torch.cat(outputs)


def _unrestricted(scores: Mapping[str, Any], *, chance: float) -> dict[str, Any]:
    return {"label_set": "all", "chance": chance, **{k: scores[k] for k in UNRESTRICTED_KEYS[2:]}}


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
    cache: FeatureCache | None = None,
    zero_shot_labels: str = "shared",
    normalise: str | None = None,
    audio: Mapping[str, Any] | None = None,
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
        cache: the feature cache (config ``features.cache_dir``); ``None`` computes the
            features in memory.
        zero_shot_labels: ``shared`` (a zero-shot score on the labels both corpora hold,
            the unrestricted one beside it) or ``all`` (every output, every utterance).
        normalise: feature standardisation of the scored corpus; default the model's
            training ``normalise`` (``none`` when it has none).
        audio: config ``audio`` (its ``loudness`` is named in the JSON).

    Returns:
        A mapping with the keys of :data:`EVAL_KEYS`.

    Raises:
        UserError: a bad role, protocol or label set, a truth label the evaluation
            cannot place, unreadable audio, or a model that gives non-finite logits.

    Example:
        >>> result = evaluate(load_final_model(Path("results/final/optuna/model")),
        ...     split_csv=Path("results/splits/ravdess.csv"), model_name="optuna",
        ...     role="zero_shot", protocol="speaker")  # doctest: +SKIP
        >>> result["part"], result["label_set"], result["chance"]  # doctest: +SKIP
        ('all', 'shared', 0.16666666666666666)
    """
    import torch

    from serhpo.data import load_split
    from serhpo.normalisation import check_mode

    if role not in ROLES:
        raise UserError(
            f"corpus role {role!r}; expected one of {list(ROLES)} (corpora.<name>.role)."
        )
    if protocol not in PROTOCOLS:
        raise UserError(
            f"protocol {protocol!r}; expected one of {list(PROTOCOLS)} (config split.strategy)."
        )
    if zero_shot_labels not in LABEL_SETS:
        raise UserError(
            f"evaluation.zero_shot_labels is {zero_shot_labels!r}; expected one of "
            f"{list(LABEL_SETS)}."
        )
    normalise = check_mode(normalise if normalise is not None else final.normalise)
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
    before = dataclasses.replace(cache.stats) if cache is not None else None
    logits = corpus_logits(
        final,
        utterances,
        cache=cache,
        normalise=normalise,
        batch_size=batch_size,
        corpus=corpus,
    )
    finite = torch.isfinite(logits).all(dim=1)
    if not bool(finite.all()):
        first = utterances[int((~finite).nonzero()[0, 0])].utterance_id
        raise final.non_finite_error(
            where=f"{int((~finite).sum())} of {len(utterances)} utterances of {corpus} "
            f"(first: {first}), so they cannot be scored"
        )
    y_pred = output_to_label[logits.argmax(dim=1).numpy()] if len(utterances) else y_true
    everything = score_predictions(y_true, y_pred, labels=labels, resamples=resamples, seed=seed)
    # The untuned head never saw any corpus of ours, the home corpus included.
    zero_shot = role != "tune" or PRETRAINED in (model_name, final.metadata.get("model"))
    chance_all = 1.0 / len(final.labels)
    shared = shared_labels(labels, final.labels, truth_labels)
    notes: list[str] = []
    if zero_shot and zero_shot_labels == "shared" and shared:
        keep = np.isin(y_true, [index[label] for label in shared])
        allowed = torch.tensor([label in shared for label in final.labels])
        masked = logits.masked_fill(~allowed, -math.inf)
        shared_index = {label: i for i, label in enumerate(shared)}
        to_shared = np.array([shared_index.get(label, -1) for label in final.labels])
        y_true_shared = np.array([shared_index[labels[i]] for i in y_true[keep]], dtype=np.int64)
        y_pred_shared = to_shared[masked[torch.from_numpy(keep)].argmax(dim=1).numpy()]
        scores = score_predictions(
            y_true_shared, y_pred_shared, labels=shared, resamples=resamples, seed=seed
        )
        label_set, chance = "shared", 1.0 / len(shared)
        unrestricted = _unrestricted(everything, chance=chance_all)
        left_out = sorted(set(truth_labels) - set(shared))
        notes.append(
            f"scored on the {len(shared)} labels {corpus} and the model share {shared}: the "
            f"argmax runs over those outputs only (chance {chance:.3f}); "
            f"{int((~keep).sum())} utterances of labels the model cannot predict "
            f"{left_out} are left out. unrestricted holds the score over all "
            f"{len(final.labels)} outputs and all {len(utterances)} utterances "
            f"(BCA {everything['bca']:.3f}, chance {chance_all:.3f})."
        )
    else:
        scores = everything
        label_set, chance, unrestricted = "all", chance_all, None
        if zero_shot and zero_shot_labels == "shared":
            notes.append(
                f"the model's labels {list(final.labels)} share none with {corpus}'s "
                f"{truth_labels}: scored on all labels."
            )
    absent = scores.pop("absent_labels")
    unpredictable = [label for label in scores["labels"] if label not in final.labels]
    notes.insert(
        0,
        f"BCA is the mean recall over the {len(scores['labels']) - len(absent)} labels present "
        f"in the truth; bca_ci95 is a percentile bootstrap over utterances ({resamples} "
        f"resamples, seed {seed}).",
    )
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
    if normalise != "none":
        notes.append(
            f"features standardised per {normalise} with {corpus}'s own statistics (as in "
            "training; no labels used)."
        )
    features = {
        "cache_dir": str(cache.root) if cache is not None else None,
        "read": (cache.stats.loaded + cache.stats.memory - before.loaded - before.memory)
        if cache is not None and before is not None
        else 0,
        "computed": (cache.stats.computed - before.computed)
        if cache is not None and before is not None
        else len(utterances),
    }
    result = {
        "model": model_name,
        "corpus": corpus,
        "protocol": protocol,
        "part": "test" if role == "tune" else "all",
        "zero_shot": zero_shot,
        "label_set": label_set,
        "chance": chance,
        **scores,
        "unrestricted": unrestricted,
        "normalise": normalise,
        "loudness": describe_loudness(audio),
        "features": features,
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
    cleaned = _nan_to_none(dict(result))
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(cleaned, indent=2) + "\n")
    partial.replace(path)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(item) for item in value]
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
    parser.add_argument(
        "--split",
        type=Path,
        nargs="+",
        required=True,
        help="the corpus' split CSV; several: one evaluation each, the model loaded once",
    )
    parser.add_argument(
        "--out", type=Path, nargs="+", required=True, help="evaluation JSON to write, per --split"
    )
    parser.add_argument(
        "--model-name",
        help="model name in the JSON (default: the model folder's engine, or 'pretrained')",
    )
    parser.add_argument(
        "--corpus",
        nargs="+",
        help="corpus name, per --split (default: the split CSV's corpus column)",
    )
    parser.add_argument(
        "--role",
        nargs="+",
        choices=ROLES,
        help="per --split: tune scores the test part, zero_shot all of it (default: config)",
    )
    parser.add_argument(
        "--protocol", choices=PROTOCOLS, help="the split protocol (default: config split.strategy)"
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--bootstrap",
        type=int,
        help="bootstrap resamples for bca_ci95 (default: config evaluation.bootstrap)",
    )
    parser.add_argument("--seed", type=int, help="bootstrap seed (default: config seed)")
    parser.add_argument("--batch-size", type=int, default=8, help="utterances per forward pass")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="feature cache root (default: config features.cache_dir); 'none' computes in memory",
    )
    parser.add_argument(
        "--zero-shot-labels",
        choices=LABEL_SETS,
        help="zero-shot: score the shared labels (argmax over them) or all outputs "
        "(default: config evaluation.zero_shot_labels, else shared)",
    )
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: the model's training threads)"
    )
    parser.add_argument(
        "--maxlen",
        type=int,
        help="with --pretrained: truncate utterances to this many samples (default: whole)",
    )


def _one_per_split(values: Sequence[Any] | None, option: str, splits: Sequence[Path]) -> list:
    """``values`` given per ``--split`` (``None`` each when not given)."""
    if values is None:
        return [None] * len(splits)
    if len(values) != len(splits):
        raise UserError(
            f"{option} has {len(values)} value(s) for {len(splits)} --split CSV(s); expected one "
            f"per split, in the same order. Give {option} once per --split (or leave it out)."
        )
    return list(values)


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo evaluate``: score one model on each corpus given, write one JSON each.

    The model is loaded once and the corpora are scored in turn, sharing its feature cache.
    """
    config = read_stage_config(args.config, args.config_json)
    splits: list[Path] = list(args.split)
    outs = _one_per_split(args.out, "--out", splits)
    corpora = _one_per_split(args.corpus, "--corpus", splits)
    roles = _one_per_split(args.role, "--role", splits)
    roles = [
        role if role is not None else _config_role(config, corpus or split_csv.stem)
        for split_csv, corpus, role in zip(splits, corpora, roles, strict=True)
    ]
    from serhpo.features import FeatureCache
    from serhpo.final import load_final_model, pretrained_final_model

    if args.pretrained is not None:
        final = pretrained_final_model(args.pretrained, maxlen=args.maxlen)
        model_name = args.model_name or PRETRAINED
    else:
        final = load_final_model(args.model_dir)
        model_name = args.model_name or final.metadata.get("engine") or args.model_dir.parent.name
    if args.threads is not None:
        final.threads = args.threads
    # config is complete (read_stage_config fills the schema's defaults): options override it.
    protocol = args.protocol or config["split"]["strategy"]
    resamples = args.bootstrap if args.bootstrap is not None else config["evaluation"]["bootstrap"]
    seed = args.seed if args.seed is not None else config["seed"]
    zero_shot_labels = args.zero_shot_labels or config["evaluation"]["zero_shot_labels"]
    cache_dir = args.cache_dir if args.cache_dir is not None else config["features"]["cache_dir"]
    cache = (
        None
        if str(cache_dir).lower() == "none"
        else FeatureCache(cache_dir, backbone=final.cache_name, memory_bytes=0, progress=True)
    )
    for split_csv, corpus, role, out in zip(splits, corpora, roles, outs, strict=True):
        result = evaluate(
            final,
            split_csv=split_csv,
            model_name=model_name,
            role=role,
            protocol=protocol,
            corpus=corpus,
            target_labels=config["target_labels"],
            resamples=resamples,
            seed=seed,
            batch_size=args.batch_size,
            cache=cache,
            zero_shot_labels=zero_shot_labels,
            audio=config["audio"],
        )
        write_evaluation(result, out)
        _log_result(model_name, result)
    return 0


def _corpus_role_default() -> str:
    """The schema's default ``role`` of a corpus entry (corpora' entries share one schema)."""
    return schema_node("corpora")["additionalProperties"]["properties"]["role"]["default"]


def _config_role(config: Mapping[str, Any], corpus: str) -> str:
    """A corpus' role from the config, for a call without ``--role``."""
    entry = (config.get("corpora") or {}).get(corpus)
    if not entry:
        raise UserError(
            f"no --role given and config has no corpora.{corpus} entry; pass --role "
            "tune (score the test part) or --role zero_shot (score every utterance)."
        )
    return entry.get("role", _corpus_role_default())


def _log_result(model_name: str, result: Mapping[str, Any]) -> None:
    low, high = result["bca_ci95"]
    log.info(
        "%s on %s (%s, n=%d, %s labels, chance %.3f): BCA %.3f [%.3f, %.3f], accuracy %.3f, "
        "macro-F1 %.3f; features: %d read from the cache, %d computed",
        model_name,
        result["corpus"],
        "test part" if result["part"] == "test" else "all utterances",
        result["n"],
        result["label_set"],
        result["chance"],
        result["bca"],
        low,
        high,
        result["accuracy"],
        result["macro_f1"],
        result["features"]["read"],
        result["features"]["computed"],
    )
