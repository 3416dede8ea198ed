"""Prepared audio for training: the split CSV's utterances, waveforms, maxlen and batches.

The split CSV (written by ``serhpo split``) has one row per labelled utterance, with
``utterance_id``, ``path`` (the prepared mono 16 kHz WAV, relative to the project
root), ``corpus``, ``speaker``, ``label``, ``num_samples``, ``part``
(train / valid / test) and optionally ``fold``.

Example:
    >>> data = load_split(Path("results/splits/emodb.csv"),
    ...                   parts=("train", "valid"))  # doctest: +SKIP
    >>> prep = Preprocessing(maxlen=48000, padding=True)  # doctest: +SKIP
    >>> waveform, valid = prep.apply(read_waveform(data.parts["train"][0].path))  # doctest: +SKIP
    >>> waveform.shape, valid  # doctest: +SKIP
    (torch.Size([48000]), 41230)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
import torch

from serhpo.errors import UserError

#: Sample rate of every prepared file.
SAMPLE_RATE = 16000

#: Columns the trainer reads from a split CSV.
REQUIRED_COLUMNS = ("utterance_id", "path", "corpus", "speaker", "label", "part")

PARTS = ("train", "valid", "test")


@dataclass(frozen=True)
class FeatureItem:
    """The frozen computation's output for one utterance.

    Attributes:
        values: a tensor; ``(frames, dim)`` for frame sequences (log-Mel, conv features),
            ``(dim,)`` for utterance-level vectors (functionals, pooled encoder outputs),
            any other shape a family's trainable part understands. Stored as float32
            (or float16 where a family chooses to save space); the trainer converts to
            float32.
        valid_frames: how many leading frames along the first axis come from real
            audio; the rest come from zero-padding (``maxlen`` with padding on) and are
            masked by the trainable part. For vectors, ``1``.
    """

    values: torch.Tensor
    valid_frames: int


@dataclass(frozen=True)
class Utterance:
    """One labelled utterance of a split.

    Attributes:
        utterance_id: unique within its corpus.
        corpus: corpus name (a cache path component).
        path: the prepared WAV, absolute.
        label: its target label.
        speaker: speaker id.
        num_samples: length in samples at 16 kHz (from the CSV, or read from the file).
    """

    utterance_id: str
    corpus: str
    path: Path
    label: str
    speaker: str
    num_samples: int


@dataclass
class SplitData:
    """The utterances of some parts of a split, with a fixed class order.

    Attributes:
        labels: class names; a class's index is its position here.
        parts: part name (``train``, ``valid``, ``test``) -> utterances, in CSV order.
        source: the split CSV it came from.
    """

    labels: tuple[str, ...]
    parts: dict[str, list[Utterance]]
    source: Path | None = None
    label_index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.label_index = {label: index for index, label in enumerate(self.labels)}

    def targets(self, part: str) -> np.ndarray:
        """Class indices of a part's utterances, int64.

        Example:
            >>> data.targets("valid")[:3]  # doctest: +SKIP
            array([0, 4, 2])
        """
        return np.array([self.label_index[u.label] for u in self.parts[part]], dtype=np.int64)


def load_split(
    split_csv: Path,
    *,
    parts: Sequence[str] = ("train", "valid"),
    labels: Sequence[str] | None = None,
    root: Path | None = None,
    fold: int | None = None,
) -> SplitData:
    """Read the utterances of ``parts`` from a split CSV; never reads the other parts' audio.

    Args:
        split_csv: the split CSV.
        parts: which parts to keep (``test`` only for final evaluation).
        labels: the class order (config ``target_labels``); by default the sorted labels
            found in the kept parts. Labels outside it are an error.
        root: the project root that the ``path`` column is relative to; default: the
            current directory (Snakemake runs there).
        fold: with a ``fold`` column, the non-test rows of fold ``fold`` become the
            ``valid`` part and the other non-test rows the ``train`` part
            (cross-validation inside the training data); ``None`` uses ``part`` as is.

    Raises:
        UserError: missing columns or files, unknown labels, an empty part.

    Example:
        >>> data = load_split(Path("results/splits/emodb.csv"),
        ...                   labels=["anger", "sadness"])  # doctest: +SKIP
        >>> sorted(data.parts)  # doctest: +SKIP
        ['train', 'valid']
    """
    split_csv = Path(split_csv)
    if not split_csv.is_file():
        raise UserError(
            f"split CSV {split_csv} does not exist; expected the output of `serhpo split`. "
            "Run the split stage first (snakemake results/splits/<corpus>.csv)."
        )
    table = pd.read_csv(split_csv, dtype={"utterance_id": str, "speaker": str, "label": str})
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise UserError(
            f"split CSV {split_csv} lacks column(s) {missing}; found {list(table.columns)}, "
            f"expected at least {list(REQUIRED_COLUMNS)}. Regenerate it with `serhpo split`."
        )
    unknown_parts = sorted(set(parts) - set(PARTS))
    if unknown_parts:
        raise ValueError(f"unknown part(s) {unknown_parts}; expected some of {PARTS}")
    table = table[table["label"].notna() & (table["label"] != "")]
    if fold is not None:
        table = _assign_fold(table, fold=fold, split_csv=split_csv)
    table = table[table["part"].isin(parts)]

    if labels is None:
        labels = sorted(table["label"].unique())
    labels = tuple(labels)
    check_labels(table, labels, split_csv)

    root = Path.cwd() if root is None else Path(root)
    selected: dict[str, list[Utterance]] = {}
    for part in parts:
        rows = table[table["part"] == part]
        if rows.empty:
            raise UserError(
                f"split CSV {split_csv} has no labelled utterance in part {part!r}; "
                f"parts found: {sorted(table['part'].unique())}. Check split.valid_fraction "
                "and split.test_fraction in config.yaml."
            )
        selected[part] = [_utterance(row, root=root) for row in rows.itertuples(index=False)]
    return SplitData(labels=labels, parts=selected, source=split_csv)


def check_labels(table: pd.DataFrame, labels: Sequence[str], split_csv: Path) -> None:
    """Refuse split rows whose label is not one of ``labels``, saying how to map it.

    Raises:
        UserError: naming the labels found outside ``labels``.
    """
    unknown = sorted(set(table["label"]) - set(labels))
    if unknown:
        raise UserError(
            f"split CSV {split_csv} has label(s) {unknown} outside the target labels "
            f"{list(labels)}. Map them in config (corpora.<name>.label_map) or add them "
            "to target_labels."
        )


def _assign_fold(table: pd.DataFrame, *, fold: int, split_csv: Path) -> pd.DataFrame:
    if "fold" not in table.columns:
        raise UserError(
            f"fold {fold} requested but split CSV {split_csv} has no 'fold' column. "
            "Set split.folds > 0 in config.yaml and rerun the split stage."
        )
    table = table.copy()
    development = table["part"] != "test"
    folds = sorted(table.loc[development, "fold"].dropna().astype(int).unique())
    if fold not in folds:
        raise UserError(f"fold {fold} not in split CSV {split_csv}; folds found: {folds}.")
    in_fold = table["fold"].fillna(-1).astype(int) == fold
    table.loc[development & in_fold, "part"] = "valid"
    table.loc[development & ~in_fold, "part"] = "train"
    return table


def utterances_of(rows: pd.DataFrame, *, root: Path | None = None) -> list[Utterance]:
    """The utterances of some rows of a split CSV (checked to exist), in row order.

    For callers that choose rows by other columns than ``part`` (the outer and inner
    folds of :mod:`serhpo.crossval`).

    Example:
        >>> table = pd.read_csv("results/splits/emodb.csv", dtype=str)  # doctest: +SKIP
        >>> len(utterances_of(table[table["fold"] == "0"]))  # doctest: +SKIP
        107
    """
    root = Path.cwd() if root is None else Path(root)
    return [_utterance(row, root=root) for row in rows.itertuples(index=False)]


def _utterance(row: object, *, root: Path) -> Utterance:
    path = Path(row.path)
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise UserError(
            f"prepared audio {path} (utterance {row.utterance_id}) does not exist. "
            "Run the prepare stage, or run from the project root (paths in the split CSV "
            "are relative to it)."
        )
    num_samples = getattr(row, "num_samples", None)
    if num_samples is None or pd.isna(num_samples):
        num_samples = soundfile.info(str(path)).frames
    return Utterance(
        utterance_id=str(row.utterance_id),
        corpus=str(row.corpus),
        path=path.resolve(),
        label=str(row.label),
        speaker=str(row.speaker),
        num_samples=int(num_samples),
    )


def read_waveform(path: Path) -> torch.Tensor:
    """Read a prepared mono 16 kHz WAV as float32 samples in [-1, 1], shape ``(num_samples,)``.

    Raises:
        UserError: when the file is not mono 16 kHz (it was not prepared).

    Example:
        >>> read_waveform(Path("resources/corpora/emodb/16k/03a01Fa.wav")).dtype  # doctest: +SKIP
        torch.float32
    """
    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE or samples.shape[1] != 1:
        raise UserError(
            f"{path} is {rate} Hz with {samples.shape[1]} channel(s); expected prepared mono "
            f"{SAMPLE_RATE} Hz audio. Run `serhpo prepare` and point the split CSV at its output."
        )
    return torch.from_numpy(np.ascontiguousarray(samples[:, 0]))


@dataclass(frozen=True)
class Preprocessing:
    """Truncation to ``maxlen`` samples, and zero-padding up to it when ``padding`` is on.

    Attributes:
        maxlen: the maximum number of samples (the paper's ``maxlen``); ``None`` keeps
            whole utterances.
        padding: zero-pad shorter utterances to ``maxlen`` (the paper: on).
    """

    maxlen: int | None = None
    padding: bool = True

    def __post_init__(self) -> None:
        if self.maxlen is not None and self.maxlen <= 0:
            raise UserError(f"maxlen must be a positive number of samples; got {self.maxlen}.")

    def output_length(self, num_samples: int) -> int:
        """Samples after preprocessing an utterance of ``num_samples``."""
        if self.maxlen is None:
            return num_samples
        if self.padding:
            return self.maxlen
        return min(num_samples, self.maxlen)

    def variant(self, num_samples: int) -> str:
        """A name for what preprocessing does to an utterance of ``num_samples``.

        Different ``maxlen`` values that produce the same samples share a name, so the
        feature cache stores one entry for them: an utterance no longer than ``maxlen``
        without padding is ``full`` for every such ``maxlen``.

        Example:
            >>> Preprocessing(maxlen=32000, padding=False).variant(20000)
            'full'
            >>> Preprocessing(maxlen=32000, padding=True).variant(20000)
            'pad32000'
            >>> Preprocessing(maxlen=16000, padding=True).variant(20000)
            'first16000'
        """
        if self.maxlen is None or num_samples == self.maxlen:
            return "full"
        if num_samples > self.maxlen:
            return f"first{self.maxlen}"
        return f"pad{self.maxlen}" if self.padding else "full"

    def apply(self, waveform: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Truncate (and pad) a waveform; return it and its number of real samples.

        Example:
            >>> Preprocessing(maxlen=4, padding=True).apply(torch.ones(2))
            (tensor([1., 1., 0., 0.]), 2)
        """
        if self.maxlen is None:
            return waveform, int(waveform.shape[0])
        waveform = waveform[: self.maxlen]
        valid = int(waveform.shape[0])
        if self.padding and valid < self.maxlen:
            waveform = torch.nn.functional.pad(waveform, (0, self.maxlen - valid))
        return waveform, valid


def collate(items: Sequence[FeatureItem]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack feature items into a float32 batch, zero-padding the first axis; return lengths.

    Example:
        >>> batch, lengths = collate([FeatureItem(torch.ones(2, 3), 2),
        ...                           FeatureItem(torch.ones(4, 3), 3)])
        >>> batch.shape, lengths.tolist()
        (torch.Size([2, 4, 3]), [2, 3])
    """
    values = [item.values.float() for item in items]
    lengths = torch.tensor([item.valid_frames for item in items], dtype=torch.int64)
    if values[0].dim() == 0 or all(v.shape == values[0].shape for v in values):
        return torch.stack(values), lengths
    return torch.nn.utils.rnn.pad_sequence(values, batch_first=True), lengths


def batches(
    count: int, *, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
) -> Iterator[list[int]]:
    """Index batches over ``count`` items; shuffled by ``generator`` for a deterministic order.

    Example:
        >>> list(batches(5, batch_size=2, shuffle=False))
        [[0, 1], [2, 3], [4]]
    """
    order = torch.randperm(count, generator=generator).tolist() if shuffle else range(count)
    order = list(order)
    for start in range(0, count, batch_size):
        yield order[start : start + batch_size]
