"""Label new recordings with a trained model: ``serhpo predict MODEL_DIR FILE...``.

Every file goes through :func:`serhpo.audio.prepare_waveform`, the path every corpus
recording took (decode any rate and channel count, downmix to mono, resample to
16 kHz, the same checks as the training data). A recording longer than the model's
``maxlen`` is covered by windows of that length (:func:`windows_of`: consecutive, the
last one aligned to the end), so the whole recording is labelled, not its first
``maxlen`` samples; silent windows are left out (the silence check applies to what is
scored), and the remaining windows' probabilities are averaged. Each window then takes the
model's own padding, frozen feature and classifier, all in memory: no cache folder. The
output says how many windows each label rests on.
A file that cannot be used gets an error line naming it and the reason, and the other
files are still labelled; the exit status is 1 when any file failed, 0 otherwise.

Example:
    $ serhpo predict results/final/optuna/model a.wav b.flac --format csv --output labels.csv
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from serhpo.audio import AudioRejected, active_level_dbfs, prepare_waveform
from serhpo.final import FinalModel, load_final_model

log = logging.getLogger(__name__)

FORMATS = ("table", "csv", "json")


@dataclass(frozen=True)
class Prediction:
    """The label of one file, or why it has none.

    Attributes:
        file: the file as given.
        label: the most probable label (``None`` when the file failed).
        probabilities: label -> probability, in the model's label order (empty on failure).
        error: why the file could not be labelled (``None`` when it was).
        windows: how many windows of the model's length were scored and averaged (silent
            windows of a long recording are left out); 0 when the file failed.
    """

    file: str
    label: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    windows: int = 0

    @property
    def ok(self) -> bool:
        """True when the file was labelled."""
        return self.error is None


def windows_of(num_samples: int, *, length: int | None) -> list[tuple[int, int]]:
    """``(start, end)`` sample ranges of windows of ``length`` covering a recording.

    Windows follow each other; when the recording is not a whole number of windows long,
    the last one is aligned to its end (overlapping the one before), so every window has
    the model's length and no sample is left out. A recording no longer than ``length``,
    or a model without one (``None``), is one window.

    Example:
        >>> windows_of(50, length=20)
        [(0, 20), (20, 40), (30, 50)]
        >>> windows_of(15, length=20)
        [(0, 15)]
    """
    if length is None or num_samples <= length:
        return [(0, num_samples)]
    starts = list(range(0, num_samples - length + 1, length))
    if starts[-1] + length < num_samples:
        starts.append(num_samples - length)
    return [(start, start + length) for start in starts]


def _load(final: FinalModel, path: Path) -> list[torch.Tensor]:
    """The recording's windows that hold speech (see the module docstring)."""
    audio = prepare_waveform(
        path, sample_rate=final.sample_rate, checks=final.checks, loudness=final.loudness
    )
    samples = np.asarray(audio.samples, dtype=np.float32)
    ranges = windows_of(len(samples), length=final.preprocessing.maxlen)
    if len(ranges) == 1:
        return [torch.from_numpy(samples)]
    kept = [
        torch.from_numpy(samples[start:end].copy())
        for start, end in ranges
        if active_level_dbfs(samples[start:end], sample_rate=final.sample_rate)
        >= final.checks.silence_dbfs
    ]
    if not kept:  # prepare_waveform judged the whole file; no window can be louder than it
        raise AudioRejected(
            f"silent: none of its {len(ranges)} windows of {final.preprocessing.maxlen} "
            f"samples reaches {final.checks.silence_dbfs:g} dBFS of active speech"
        )
    skipped = len(ranges) - len(kept)
    if skipped:
        log.info("%s: %d of %d windows are silent and not scored", path, skipped, len(ranges))
    return kept


def predict_files(
    final: FinalModel, files: Sequence[Path | str], *, batch_size: int = 8
) -> list[Prediction]:
    """Label audio files of any sample rate and channel count; failures are kept, not raised.

    Args:
        final: the model (:func:`serhpo.final.load_final_model`).
        files: the recordings.
        batch_size: files per forward pass.

    Returns:
        One :class:`Prediction` per file, in the order given; a file the model gives
        non-finite scores (NaN or infinite) gets an error, never a label.

    Raises:
        ValueError: ``batch_size`` below 1.

    Example:
        >>> predictions = predict_files(load_final_model(Path("results/final/optuna/model")),
        ...                             [Path("a.wav"), Path("missing.wav")])  # doctest: +SKIP
        >>> [(p.label, p.error) for p in predictions]  # doctest: +SKIP
        [('anger', None), (None, "unreadable: [Errno 2] No such file or directory: 'missing.wav'")]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    predictions: list[Prediction] = []
    for start in range(0, len(files), batch_size):
        chunk = [str(file) for file in files[start : start + batch_size]]
        waveforms: dict[int, list[torch.Tensor]] = {}
        errors: dict[int, str] = {}
        for index, file in enumerate(chunk):
            try:
                waveforms[index] = _load(final, Path(file))
            except AudioRejected as rejected:
                errors[index] = rejected.reason
            except OSError as error:  # missing, a folder, no permission
                errors[index] = f"unreadable: {error}"
        probabilities = _probabilities(final, waveforms, errors)
        for index, file in enumerate(chunk):
            if index in errors:
                predictions.append(Prediction(file=file, label=None, error=errors[index]))
                continue
            row = probabilities[index]
            if not bool(torch.isfinite(row).all()):
                error = final.non_finite_error(where="this file")
                predictions.append(Prediction(file=file, label=None, error=str(error)))
                continue
            predictions.append(
                Prediction(
                    file=file,
                    label=final.labels[int(row.argmax())],
                    probabilities={
                        label: float(p) for label, p in zip(final.labels, row, strict=True)
                    },
                    windows=len(waveforms[index]),
                )
            )
    return predictions


def _probabilities(
    final: FinalModel, waveforms: dict[int, list[torch.Tensor]], errors: dict[int, str]
) -> dict[int, torch.Tensor]:
    """Each readable file's probabilities, averaged over its windows; a file the model
    cannot process joins ``errors``."""
    indices = list(waveforms)
    if not indices:
        return {}
    try:
        flat = [window for index in indices for window in waveforms[index]]
        rows = final.probabilities(flat, batch_size=max(1, min(len(flat), 32)))
        result, offset = {}, 0
        for index in indices:
            count = len(waveforms[index])
            result[index] = rows[offset : offset + count].mean(dim=0)
            offset += count
        return result
    except Exception:  # one bad file must not cost the others their labels: retry one by one
        result = {}
        for index in indices:
            try:
                result[index] = final.probabilities(waveforms[index]).mean(dim=0)
            except Exception as error:
                errors[index] = f"the model failed on it: {type(error).__name__}: {error}"
        return result


def predictions_frame(predictions: Sequence[Prediction], *, labels: Sequence[str]) -> pd.DataFrame:
    """One row per file: ``file``, ``label``, one probability column per label, ``windows``,
    ``error``.

    Example:
        >>> predictions_frame([Prediction("a.wav", "anger", {"anger": 0.9, "sadness": 0.1},
        ...                               windows=1)], labels=["anger", "sadness"]).columns.tolist()
        ['file', 'label', 'anger', 'sadness', 'windows', 'error']
    """
    rows = [
        {
            "file": p.file,
            "label": p.label,
            **{label: p.probabilities.get(label) for label in labels},
            "windows": p.windows,
            "error": p.error,
        }
        for p in predictions
    ]
    return pd.DataFrame(rows, columns=["file", "label", *labels, "windows", "error"])


def format_predictions(
    predictions: Sequence[Prediction], *, labels: Sequence[str], fmt: str = "table"
) -> str:
    """Render predictions as an aligned table (labelled files only), CSV or JSON.

    CSV and JSON list every file, with an ``error`` field that is empty when the file
    was labelled; the table shows the labelled files (errors go to stderr).

    Example:
        >>> print(format_predictions([Prediction("a.wav", "anger", {"anger": 0.9,
        ...     "sadness": 0.1}, windows=1)], labels=["anger", "sadness"]), end="")
         file label  anger  sadness  windows
        a.wav anger  0.900    0.100        1
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}; expected one of {FORMATS}")
    if fmt == "json":
        records = [
            {
                "file": p.file,
                "label": p.label,
                "probabilities": p.probabilities,
                "windows": p.windows,
                "error": p.error,
            }
            for p in predictions
        ]
        # allow_nan=False: NaN is not JSON; predict_files never gives it, and never will silently.
        return json.dumps(records, indent=2, allow_nan=False) + "\n"
    frame = predictions_frame(predictions, labels=labels)
    if fmt == "csv":
        return frame.to_csv(index=False)
    labelled = frame[frame["error"].isna()].drop(columns="error")
    if labelled.empty:
        return "no file could be labelled\n"
    return labelled.to_string(index=False, float_format=lambda value: f"{value:.3f}") + "\n"


# ---------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo predict``."""
    parser.add_argument("model_dir", type=Path, help="a model folder written by `serhpo retrain`")
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE", help="recordings to label")
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default: table)"
    )
    parser.add_argument("--output", type=Path, help="write here instead of standard output")
    parser.add_argument(
        "--batch-size", type=positive_int, default=8, help="files per forward pass (>= 1)"
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="torch CPU threads (default: the model's training threads)",
    )


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1.

    Example:
        >>> positive_int("8")
        8
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo predict``: label the files; exit status 1 when any file failed."""
    final = load_final_model(args.model_dir)
    if args.threads is not None:
        final.threads = args.threads
    predictions = predict_files(final, args.files, batch_size=args.batch_size)
    for prediction in predictions:
        if not prediction.ok:
            print(f"serhpo predict: {prediction.file}: {prediction.error}", file=sys.stderr)
    text = format_predictions(predictions, labels=final.labels, fmt=args.format)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    failed = sum(not p.ok for p in predictions)
    if failed:
        log.warning("%d of %d files could not be labelled", failed, len(predictions))
    return 1 if failed else 0
