"""The ``split`` stage: assign each labelled utterance to train, valid or test.

Two protocols:

* ``stratified``: the paper's random, label-stratified split; speakers appear in several parts,
  which flatters the scores (about 8 points on EmoDB).
* ``speaker``: speaker-independent; no speaker is in two parts, and labels are balanced across
  parts as far as whole speakers allow (scikit-learn's ``StratifiedGroupKFold``).

Both carve the validation part from the training part: HPO selects on ``valid`` and the ``test``
part is read only by evaluation. This single split (``part`` column) is the paper's protocol.

Optional outer folds (``fold`` column, ``split.folds``: k or ``loso``) give speaker
cross-validation with ``strategy: speaker``: every speaker is held out exactly once, either in
one of k label-balanced groups of speakers (``StratifiedGroupKFold``) or alone
(leave-one-speaker-out). Inside an outer fold, hyper-parameters are selected on inner speaker
folds of its training speakers (:func:`inner_speaker_folds`, ``split.inner_folds``), computed
from the seed when needed, so the split CSV holds the outer folds only.

A zero-shot corpus (``corpora.<name>.role: zero_shot``) is never trained on: it needs no split
and is scored on all its labelled rows, so every one of them is written with part ``test``,
whatever its number of speakers or utterances per label.

Example:
    $ serhpo split results/manifests/emodb.csv results/splits/emodb.csv --strategy speaker --seed 0
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from serhpo.errors import UserError

log = logging.getLogger(__name__)

PARTS = ("train", "valid", "test")
STRATEGIES = ("stratified", "speaker")
ROLES = ("tune", "zero_shot")
#: ``split.folds`` value for leave-one-speaker-out folds.
LOSO = "loso"


def parse_folds(value: int | str | None, *, key: str = "split.folds") -> int | str:
    """Check a folds setting: 0 (none), an integer k >= 2, or ``"loso"``.

    Example:
        >>> parse_folds("5"), parse_folds("loso"), parse_folds(None)
        (5, 'loso', 0)
    """
    if value is None:
        return 0
    if isinstance(value, str) and value.strip().lower() == LOSO:
        return LOSO
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if isinstance(value, bool) or number == 1 or number < 0 or str(number) != str(value).strip():
        raise UserError(
            f"{key} is {value!r}; expected 0 (no folds), an integer k >= 2, or 'loso' "
            "(leave-one-speaker-out)."
        )
    return number


def _check_fractions(test_fraction: float, valid_fraction: float) -> None:
    for name, value in (("test_fraction", test_fraction), ("valid_fraction", valid_fraction)):
        if not 0 < value < 1:
            raise UserError(
                f"split.{name} is {value}; expected a number between 0 and 1 exclusive."
            )


def split_stratified(
    manifest: pd.DataFrame,
    *,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.2,
    seed: int = 0,
) -> pd.Series:
    """Random label-stratified split (the paper's protocol), validation carved from training.

    Returns:
        ``train``/``valid``/``test`` per row of ``manifest``, same index.

    Example:
        >>> parts = split_stratified(manifest, seed=1)  # doctest: +SKIP
        >>> round((parts == "test").mean(), 1)  # doctest: +SKIP
        0.2
    """
    _check_fractions(test_fraction, valid_fraction)
    labels = manifest["label"]
    rest, test = train_test_split(
        manifest.index, test_size=test_fraction, stratify=labels, random_state=seed
    )
    train, valid = train_test_split(
        rest, test_size=valid_fraction, stratify=labels.loc[rest], random_state=seed
    )
    parts = pd.Series("train", index=manifest.index, name="part")
    parts.loc[valid] = "valid"
    parts.loc[test] = "test"
    return parts


def _hold_out_speakers(frame: pd.DataFrame, *, fraction: float, seed: int, what: str) -> pd.Index:
    """Rows of whole speakers holding about ``fraction`` of ``frame``, label-balanced."""
    n_speakers = frame["speaker"].nunique()
    n_splits = max(2, round(1 / fraction))
    if n_speakers < 2:
        raise UserError(
            f"a speaker-independent {what} part needs at least 2 speakers to choose from; found "
            f"{n_speakers}. Use split.strategy: stratified for a corpus this small."
        )
    n_splits = min(n_splits, n_speakers)
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held_out = next(folds.split(frame, frame["label"], groups=frame["speaker"]))
    return frame.index[held_out]


def split_by_speaker(
    manifest: pd.DataFrame,
    *,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.2,
    seed: int = 0,
) -> pd.Series:
    """Assign each utterance to train, valid or test with no speaker in two parts.

    Labels are balanced across parts as far as whole speakers allow.

    Raises:
        UserError: fewer than three speakers.

    Example:
        >>> parts = split_by_speaker(manifest, seed=1)  # doctest: +SKIP
        >>> sorted(parts.unique())  # doctest: +SKIP
        ['test', 'train', 'valid']
    """
    _check_fractions(test_fraction, valid_fraction)
    n_speakers = manifest["speaker"].nunique()
    if n_speakers < 3:
        raise UserError(
            "split.strategy speaker needs at least 3 speakers "
            "(train, valid and test each need one); "
            f"this corpus has {n_speakers}. Use split.strategy: stratified, or add speakers."
        )
    test = _hold_out_speakers(manifest, fraction=test_fraction, seed=seed, what="test")
    rest = manifest.drop(index=test)
    valid = _hold_out_speakers(rest, fraction=valid_fraction, seed=seed, what="valid")
    parts = pd.Series("train", index=manifest.index, name="part")
    parts.loc[valid] = "valid"
    parts.loc[test] = "test"
    return parts


def assign_folds(
    manifest: pd.DataFrame, *, folds: int | str, by_speaker: bool, seed: int
) -> pd.Series:
    """Fold number per utterance: leave-speakers-out when ``by_speaker``, else label-stratified.

    With ``by_speaker``, every speaker is in exactly one fold: ``folds`` label-balanced groups
    of speakers (scikit-learn's ``StratifiedGroupKFold``, shuffled by ``seed``), or with
    ``folds="loso"`` one fold per speaker, numbered in sorted speaker order.

    Raises:
        UserError: more folds than speakers, or ``loso`` without ``by_speaker``.

    Example:
        >>> fold = assign_folds(manifest, folds="loso", by_speaker=True, seed=0)  # doctest: +SKIP
        >>> fold.nunique() == manifest["speaker"].nunique()  # doctest: +SKIP
        True
    """
    folds = parse_folds(folds)
    if folds == LOSO:
        if not by_speaker:
            raise UserError(
                "split.folds: loso (leave-one-speaker-out) needs split.strategy: speaker; "
                "set the strategy to speaker, or give split.folds a number of folds."
            )
        speakers = sorted(manifest["speaker"].astype(str).unique())
        number = {speaker: index for index, speaker in enumerate(speakers)}
        return manifest["speaker"].astype(str).map(number).astype(int).rename("fold")
    if by_speaker:
        n_speakers = manifest["speaker"].nunique()
        if folds > n_speakers:
            raise UserError(
                f"split.folds is {folds} but the corpus has {n_speakers} speakers; "
                "leave-speakers-out "
                f"needs at most one fold per speaker. Set split.folds to {n_speakers} or fewer."
            )
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        pieces = splitter.split(manifest, manifest["label"], groups=manifest["speaker"])
    else:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        pieces = splitter.split(manifest, manifest["label"])
    fold = np.full(len(manifest), -1)
    for number, (_, held_out) in enumerate(pieces):
        fold[held_out] = number
    return pd.Series(fold, index=manifest.index, name="fold")


def inner_speaker_folds(
    training: pd.DataFrame, *, inner_folds: int | str = 3, seed: int = 0
) -> pd.Series:
    """Inner speaker folds of an outer fold's training rows, for selection inside it.

    The same rows, ``inner_folds`` and ``seed`` always give the same folds (the HPO study
    and anyone checking it agree without storing them). Every training speaker is in exactly
    one inner fold; ``"loso"`` gives one fold per speaker.

    Args:
        training: the outer fold's training rows (``speaker``, ``label``).
        inner_folds: k >= 2, or ``"loso"``.
        seed: shuffles the speakers into folds.

    Returns:
        Inner fold number per row, same index.

    Raises:
        UserError: fewer training speakers than inner folds.

    Example:
        >>> inner = inner_speaker_folds(split[split["fold"] != 0], inner_folds=3, seed=0)
        ... # doctest: +SKIP
        >>> sorted(inner.unique())  # doctest: +SKIP
        [0, 1, 2]
    """
    inner_folds = parse_folds(inner_folds, key="split.inner_folds")
    n_speakers = training["speaker"].nunique()
    if inner_folds == 0 or (inner_folds != LOSO and inner_folds > n_speakers) or n_speakers < 2:
        raise UserError(
            f"split.inner_folds is {inner_folds!r} but an outer fold has {n_speakers} training "
            f"speakers; inner speaker folds need 2 to {n_speakers} folds (or loso with at least 2 "
            "speakers). Lower split.inner_folds, or use fewer outer folds (split.folds)."
        )
    return assign_folds(training, folds=inner_folds, by_speaker=True, seed=seed).rename(
        "inner_fold"
    )


def split_manifest(
    manifest: pd.DataFrame,
    *,
    strategy: str = "stratified",
    test_fraction: float = 0.2,
    valid_fraction: float = 0.2,
    folds: int | str = 0,
    seed: int = 0,
    role: str = "tune",
) -> pd.DataFrame:
    """The labelled rows of a manifest with their ``part`` (and ``fold`` when ``folds`` is set).

    Utterances with an empty label (dropped by the label map) are left out. ``folds``: 0
    (none), k >= 2 or ``"loso"`` (speaker strategy only). A ``zero_shot`` corpus is not
    split: every labelled row is ``test`` (and it gets no folds).

    Example:
        >>> split_manifest(two_speaker_manifest, strategy="speaker", role="zero_shot")[
        ...     "part"].unique().tolist()  # doctest: +SKIP
        ['test']
    """
    if strategy not in STRATEGIES:
        raise UserError(f"split.strategy is {strategy!r}; expected one of {list(STRATEGIES)}.")
    if role not in ROLES:
        raise UserError(
            f"corpus role {role!r}; expected one of {list(ROLES)} (corpora.<name>.role)."
        )
    labelled = manifest[manifest["label"].fillna("") != ""].reset_index(drop=True)
    if labelled.empty:
        raise UserError("the manifest has no utterance with a target label; nothing to split.")
    if role == "zero_shot":
        return labelled.assign(part="test")
    counts = labelled["label"].value_counts()
    if counts.min() < 3:
        raise UserError(
            f"label {counts.idxmin()!r} has {counts.min()} utterances; "
            "a stratified train/valid/test "
            "split needs at least 3 per label. Drop the label (label_map) or add recordings."
        )
    split = split_by_speaker if strategy == "speaker" else split_stratified
    parts = split(labelled, test_fraction=test_fraction, valid_fraction=valid_fraction, seed=seed)
    result = labelled.assign(part=parts)
    folds = parse_folds(folds)
    if folds != 0:
        result["fold"] = assign_folds(
            labelled, folds=folds, by_speaker=strategy == "speaker", seed=seed
        )
    return result


def describe_split(split: pd.DataFrame) -> str:
    """A table of utterances per label and part, and speakers per part, for the log."""
    table = pd.crosstab(split["label"], split["part"]).reindex(columns=list(PARTS), fill_value=0)
    speakers = split.groupby("part")["speaker"].nunique().reindex(list(PARTS), fill_value=0)
    return f"{table.to_string()}\nspeakers per part: {speakers.to_dict()}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo split``."""
    parser.add_argument("manifest", type=Path, help="results/manifests/<corpus>.csv")
    parser.add_argument("output", type=Path, help="results/splits/<corpus>.csv")
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="stratified",
        help="stratified: by label; speaker: no speaker in two parts (speaker-independent)",
    )
    parser.add_argument(
        "--test-fraction", type=float, default=0.2, help="share of the rows (or speakers) in test"
    )
    parser.add_argument(
        "--valid-fraction",
        type=float,
        default=0.2,
        help="share of the rest (rows or speakers) in valid",
    )
    parser.add_argument(
        "--folds",
        type=parse_folds,
        default=0,
        help="outer folds: 0 for none, k >= 2, or loso (leave-one-speaker-out; strategy speaker)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the split")
    parser.add_argument(
        "--role",
        choices=ROLES,
        default="tune",
        help="zero_shot: no split, every labelled row is test (the corpus is only scored)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo split``."""
    manifest = pd.read_csv(
        args.manifest, dtype={"speaker": str, "label": str}, keep_default_na=False
    )
    split = split_manifest(
        manifest,
        strategy=args.strategy,
        test_fraction=args.test_fraction,
        valid_fraction=args.valid_fraction,
        folds=args.folds,
        seed=args.seed,
        role=args.role,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    split.to_csv(args.output, index=False)
    if args.role == "zero_shot":
        log.info(
            "zero-shot corpus: not split, all %d labelled utterances are scored (part test)\n%s",
            len(split),
            describe_split(split),
        )
    else:
        log.info("protocol %s, seed %d\n%s", args.strategy, args.seed, describe_split(split))
    return 0
