"""The ``prepare`` stage: a corpus folder in, mono 16 kHz WAVs, a manifest and a rejects list out.

Every file the corpus' reader lists is decoded, downmixed, resampled, checked and (with
``audio.loudness.enabled``) brought to one loudness; a file that
cannot be used goes to the rejects CSV with its reason, never silently away (for a corpus
given as a table, so does every row that names no usable file). Columns the reader adds
beyond the manifest's own (EmoDB's version, a table's other columns) are kept after them.
Labels are mapped onto the target set here; utterances whose label maps to nothing stay in
the manifest with an empty ``label`` and are counted, so the manifest accounts for every file.
A file whose bytes are identical to an earlier one's (SHA-256, read in the same pass as the
decoding) is a duplicate recording under another name: the first is kept, the other goes to
the rejects with the first one's path.

Example:
    $ serhpo prepare --corpus emodb --format emodb --raw ../shared/corpora/emodb-2s/wav \\
        --out resources/corpora/emodb/16k --manifest results/manifests/emodb.csv \\
        --rejects results/manifests/emodb.rejects.csv --summary results/manifests/emodb.summary.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from serhpo.audio import AudioChecks, AudioRejected, Loudness, prepare_waveform, write_wav
from serhpo.corpora import CorpusFormat, Listing, get_format
from serhpo.corpora.base import LISTING_COLUMNS
from serhpo.errors import UserError
from serhpo.labels import resolve_label_map
from serhpo.schema import schema_default

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = [
    "utterance_id",
    "path",
    "corpus",
    "speaker",
    "gender",
    "sentence",
    "original_label",
    "label",
    "duration_s",
    "num_samples",
    "original_sample_rate",
    "original_channels",
    "source_path",
]
REJECT_COLUMNS = ["source_path", "utterance_id", "reason"]

#: Columns later stages add to a manifest's rows (``serhpo split``); a reader's extra column
#: of one of these names, or of a manifest column's, is renamed ``<format>_<name>``.
LATER_COLUMNS = ["part", "fold"]


def _extra_columns(utterances: pd.DataFrame, *, fmt: CorpusFormat) -> dict[str, str]:
    """The reader's columns beyond :data:`LISTING_COLUMNS`: listing name -> manifest name."""
    taken = {*MANIFEST_COLUMNS, *LATER_COLUMNS}
    names = {}
    for column in utterances.columns:
        if column in LISTING_COLUMNS:
            continue
        name = column if column not in taken else f"{fmt.name}_{column}"
        if name != column:
            log.warning("the reader's column %r is kept in the manifest as %r", column, name)
        names[column] = name
    return names


def _nothing_usable(corpus: str, *, fmt: CorpusFormat, raw_dir: Path, listing: Listing) -> str:
    """The message when a folder yields no utterance: what was found instead, what to check."""
    if len(listing.rejected):
        first = listing.rejected["reason"].iloc[0]
        return (
            f"corpus '{corpus}': every one of the {len(listing.rejected)} entries that the "
            f"{fmt.name} source at {raw_dir} names was rejected (first: {first}). Fix the table "
            f"or the folder, or check corpora.{corpus}.source, .table and .columns."
        )
    return (
        f"corpus '{corpus}': found no file named like a {fmt.name} recording under {raw_dir} "
        f"({len(listing.unparsed)} other files). Check corpora.{corpus}.source and "
        f"corpora.{corpus}.format."
    )


@dataclass
class PreparedCorpus:
    """What :func:`prepare_corpus` produced.

    Attributes:
        manifest: one row per usable file, columns :data:`MANIFEST_COLUMNS`.
        rejects: one row per file that cannot be used, columns :data:`REJECT_COLUMNS`.
        summary: counts per label, speaker, dropped label and reject reason.
    """

    manifest: pd.DataFrame
    rejects: pd.DataFrame
    summary: dict[str, Any]


def file_digest(path: Path, *, chunk_bytes: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes, read in chunks (constant memory).

    Example:
        >>> len(file_digest(Path("pyproject.toml")))
        64
    """
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _prepare_one(
    row: Mapping[str, Any],
    *,
    out_dir: Path,
    sample_rate: int,
    checks: AudioChecks,
    loudness: Loudness | None = None,
) -> dict[str, Any]:
    source = Path(row["source_path"])
    if source.is_symlink() and not source.exists():
        target = os.readlink(source)
        return {"rejected": f"broken link: it points to {target}, which does not exist"}
    try:
        # Hashed first: the decoder then reads the same bytes from the page cache.
        digest = file_digest(source)
    except OSError as error:
        return {"rejected": f"unreadable: {error}"}
    try:
        audio = prepare_waveform(source, sample_rate=sample_rate, checks=checks, loudness=loudness)
    except AudioRejected as rejected:
        return {"rejected": rejected.reason, "sha256": digest}
    target = out_dir / f"{row['utterance_id']}.wav"
    write_wav(target, audio)
    return {
        "path": str(target),
        "duration_s": round(audio.duration_s, 4),
        "num_samples": len(audio.samples),
        "original_sample_rate": audio.original_sample_rate,
        "original_channels": audio.original_channels,
        "sha256": digest,
        "gain_db": audio.gain_db,
        "peak_limited": audio.peak_limited,
        "notes": audio.notes,
    }


def prepare_corpus(
    *,
    corpus: str,
    fmt: CorpusFormat,
    raw_dir: Path,
    out_dir: Path,
    target_labels: Sequence[str],
    label_map: Mapping[str, str | None] | None = None,
    expect_count: int | None = None,
    sample_rate: int = 16000,
    checks: AudioChecks | None = None,
    loudness: Loudness | None = None,
    threads: int = 1,
) -> PreparedCorpus:
    """Prepare every recording of one corpus.

    Args:
        corpus: the corpus' name in config (written into the manifest).
        fmt: its reader.
        raw_dir: the folder that holds its files (searched recursively).
        out_dir: where mono ``sample_rate`` WAVs are written, one per usable file.
        target_labels: the label set labels are mapped onto.
        label_map: config's overrides of the reader's default label map.
        expect_count: how many utterances the folder must hold (``None``: any).
        sample_rate: the target rate.
        checks: rejection thresholds.
        loudness: level normalisation of the written files (config ``audio.loudness``).
        threads: files decoded in parallel.

    Raises:
        UserError: the folder is missing, holds no file of the corpus, or not
            ``expect_count`` of them.

    Example:
        >>> result = prepare_corpus(corpus="emodb", fmt=get_format("emodb"),  # doctest: +SKIP
        ...     raw_dir=Path("wav"), out_dir=Path("16k"), target_labels=["anger", "neutral"])
        >>> result.summary["usable"]  # doctest: +SKIP
        127
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise UserError(
            f"corpus '{corpus}': source folder {raw_dir} does not exist. "
            f"Set corpora.{corpus}.source "
            "to the folder holding the corpus' files, or to download or synthetic."
        )
    listing = fmt.list_utterances(raw_dir)
    # A generic source (a table) has no code table: its labels are those of its data, and
    # each maps onto itself unless label_map says otherwise.
    own_labels = fmt.labels or listing.labels
    mapping = resolve_label_map(
        corpus=corpus,
        own_labels=own_labels,
        default_map=fmt.default_label_map or {label: label for label in own_labels},
        overrides=label_map,
        target_labels=target_labels,
    )
    utterances = listing.utterances.reset_index(drop=True)
    if utterances.empty:
        raise UserError(_nothing_usable(corpus, fmt=fmt, raw_dir=raw_dir, listing=listing))
    if expect_count is not None and len(utterances) != expect_count:
        official = (
            f" (the official release has {fmt.expected_count})"
            if fmt.expected_count is not None
            else ""
        )
        raise UserError(
            f"corpus '{corpus}' at {raw_dir} has {len(utterances)} {fmt.name} recordings; expected "
            f"{expect_count}{official}. "
            "Check the download, or "
            f"set corpora.{corpus}.expect_count: null to accept a partial corpus or a sample."
        )

    duplicated = utterances["utterance_id"].duplicated(keep="first")
    rejects = [
        {"source_path": path, "utterance_id": "", "reason": f"not part of the corpus: {reason}"}
        for path, reason in zip(
            listing.unparsed["source_path"], listing.unparsed["reason"], strict=True
        )
    ]
    rejects += listing.rejected.reindex(columns=REJECT_COLUMNS).fillna("").to_dict("records")
    rejects += [
        {
            "source_path": row.source_path,
            "utterance_id": row.utterance_id,
            "reason": "duplicate: another file has the same utterance id",
        }
        for row in utterances[duplicated].itertuples()
    ]
    utterances = utterances[~duplicated]
    extra_columns = _extra_columns(utterances, fmt=fmt)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checks = checks or AudioChecks()
    rows = utterances.to_dict("records")
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(
            tqdm(
                pool.map(
                    lambda row: _prepare_one(
                        row,
                        out_dir=out_dir,
                        sample_rate=sample_rate,
                        checks=checks,
                        loudness=loudness,
                    ),
                    rows,
                ),
                total=len(rows),
                desc=f"prepare {corpus}",
                unit="file",
            )
        )
    manifest_rows = []
    first_with: dict[str, str] = {}  # content hash -> the source path kept
    gains: list[float] = []
    limited = 0
    notes: dict[str, list[str]] = {}  # category -> utterance ids kept with such a note
    for row, result in zip(rows, results, strict=True):
        digest = result.pop("sha256", None)
        if digest is not None and "rejected" not in result:
            if digest in first_with:
                Path(result["path"]).unlink(missing_ok=True)
                result = {
                    "rejected": f"duplicate: same audio content (SHA-256) as {first_with[digest]}"
                }
            else:
                first_with[digest] = str(row["source_path"])
        if "rejected" in result:
            rejects.append(
                {
                    "source_path": row["source_path"],
                    "utterance_id": row["utterance_id"],
                    "reason": result["rejected"],
                }
            )
            continue
        gains.append(result.pop("gain_db"))
        limited += bool(result.pop("peak_limited"))
        for note in result.pop("notes"):
            notes.setdefault(note.split(":")[0], []).append(str(row["utterance_id"]))
            log.warning("corpus %s: %s: %s", corpus, row["source_path"], note)
        manifest_rows.append(
            {
                **{key: row[key] for key in ("utterance_id", "speaker", "gender", "sentence")},
                "corpus": corpus,
                "original_label": row["original_label"],
                "label": mapping.get(row["original_label"]) or "",
                "source_path": row["source_path"],
                **result,
                **{name: row[column] for column, name in extra_columns.items()},
            }
        )
    manifest = pd.DataFrame(manifest_rows, columns=[*MANIFEST_COLUMNS, *extra_columns.values()])
    manifest = manifest.sort_values("utterance_id", kind="stable").reset_index(drop=True)
    reject_table = pd.DataFrame(rejects, columns=REJECT_COLUMNS)
    summary = summarise(
        corpus=corpus, fmt=fmt, manifest=manifest, rejects=reject_table, mapping=mapping
    )
    summary["loudness"] = loudness_summary(loudness, gains=gains, limited=limited)
    summary["kept_with_notes"] = {
        category: {"count": len(ids), "utterances": sorted(ids)}
        for category, ids in sorted(notes.items())
    }
    summary["ignored_files"] = dict(listing.ignored)
    if limited:
        log.warning(
            "corpus %s: %d of %d files reached the peak limit of %.1f dBFS before the loudness "
            "target of %.1f LUFS: their gain was lowered (no clipping), so they stay quieter",
            corpus,
            limited,
            len(gains),
            loudness.peak_dbfs,
            loudness.target_lufs,
        )
    return PreparedCorpus(manifest=manifest, rejects=reject_table, summary=summary)


def loudness_summary(
    loudness: Loudness | None, *, gains: Sequence[float], limited: int
) -> dict[str, Any]:
    """What the level normalisation did: its settings, the gains applied, the files limited.

    Example:
        >>> loudness_summary(None, gains=[], limited=0)
        {'enabled': False}
    """
    if loudness is None or not loudness.enabled:
        return {"enabled": False}
    values = sorted(gains)
    return {
        "enabled": True,
        "target_lufs": loudness.target_lufs,
        "peak_dbfs": loudness.peak_dbfs,
        "peak_limited": int(limited),
        "gain_db": {
            "min": round(values[0], 2) if values else None,
            "median": round(values[len(values) // 2], 2) if values else None,
            "max": round(values[-1], 2) if values else None,
        },
    }


def summarise(
    *,
    corpus: str,
    fmt: CorpusFormat,
    manifest: pd.DataFrame,
    rejects: pd.DataFrame,
    mapping: Mapping[str, str | None],
) -> dict[str, Any]:
    """Counts a researcher checks first: usable, kept per label and speaker, dropped, rejected."""
    kept = manifest[manifest["label"] != ""]
    dropped = manifest[manifest["label"] == ""]
    reasons = rejects["reason"].str.split(":").str[0] if len(rejects) else pd.Series(dtype=str)
    return {
        "corpus": corpus,
        "format": fmt.name,
        "usable": int(len(manifest)),
        "kept": int(len(kept)),
        "rejected": int(len(rejects)),
        "official_count": fmt.expected_count,
        "label_map": dict(mapping),
        "per_label": {str(k): int(v) for k, v in kept["label"].value_counts().sort_index().items()},
        "per_speaker": {
            str(k): int(v) for k, v in kept["speaker"].value_counts().sort_index().items()
        },
        "dropped_per_original_label": {
            str(k): int(v) for k, v in dropped["original_label"].value_counts().sort_index().items()
        },
        "rejected_per_reason": {str(k): int(v) for k, v in reasons.value_counts().items()},
        "sample_rates": {
            str(k): int(v) for k, v in manifest["original_sample_rate"].value_counts().items()
        },
        "channels": {
            str(k): int(v) for k, v in manifest["original_channels"].value_counts().items()
        },
    }


def write_outputs(
    prepared: PreparedCorpus, *, manifest_path: Path, rejects_path: Path, summary_path: Path
) -> None:
    """Write the manifest, rejects and summary files (parents created)."""
    for path in (manifest_path, rejects_path, summary_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    prepared.manifest.to_csv(manifest_path, index=False)
    prepared.rejects.to_csv(rejects_path, index=False)
    Path(summary_path).write_text(json.dumps(prepared.summary, indent=2) + "\n")


def log_summary(summary: Mapping[str, Any], *, rejects_path: Path) -> None:
    """Print the counts per label and speaker, and what was dropped or rejected, to the log."""
    log.info(
        "corpus %s: %d usable files, %d with a target label, %d rejected",
        summary["corpus"],
        summary["usable"],
        summary["kept"],
        summary["rejected"],
    )
    log.info("per label: %s", summary["per_label"])
    log.info("per speaker: %s", summary["per_speaker"])
    if summary["dropped_per_original_label"]:
        log.info("dropped (label maps to no target): %s", summary["dropped_per_original_label"])
    if summary["rejected"]:
        log.warning(
            "%d files rejected, see %s: %s",
            summary["rejected"],
            rejects_path,
            summary["rejected_per_reason"],
        )
    for category, kept in summary.get("kept_with_notes", {}).items():
        log.warning("%d files kept but %s (see the summary)", kept["count"], category)
    if summary.get("ignored_files"):
        log.info("files that are not audio, left out: %s", summary["ignored_files"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo prepare``."""
    parser.add_argument("--corpus", required=True, help="the corpus' name in config")
    parser.add_argument(
        "--format", help="reader: emodb, ravdess, cremad, table or audformat (default: --corpus)"
    )
    parser.add_argument("--raw", type=Path, required=True, help="folder holding the corpus' files")
    parser.add_argument(
        "--reader-options",
        default="{}",
        help="JSON: a table or audformat corpus' table, columns and labels (as in config)",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the prepared WAVs")
    parser.add_argument(
        "--manifest", type=Path, required=True, help="CSV to write: one row per usable recording"
    )
    parser.add_argument(
        "--rejects",
        type=Path,
        required=True,
        help="CSV to write: every file that could not be used, with the reason",
    )
    parser.add_argument(
        "--summary",
        type=Path,
        required=True,
        help="JSON to write: counts per label and speaker, rejects per reason, loudness",
    )
    parser.add_argument(
        "--label-map", default="{}", help="JSON: own label -> target label or null (overrides)"
    )
    parser.add_argument(
        "--target-labels",
        default=json.dumps(schema_default("target_labels"), separators=(",", ":")),
        help="JSON list of target labels",
    )
    parser.add_argument(
        "--expect-count",
        default="none",
        help="official, an integer, or none (accept any number of recordings)",
    )
    parser.add_argument(
        "--sample-rate",
        type=int,
        default=schema_default("audio.sample_rate"),
        help="rate of the prepared WAVs (Hz)",
    )
    parser.add_argument(
        "--min-sample-rate",
        type=int,
        default=schema_default("audio.min_sample_rate"),
        help="reject files recorded below this rate (Hz)",
    )
    parser.add_argument(
        "--min-duration",
        type=float,
        default=schema_default("audio.min_duration_s"),
        help="reject files shorter than this (seconds)",
    )
    parser.add_argument(
        "--silence-dbfs",
        type=float,
        default=schema_default("audio.silence_dbfs"),
        help="reject files whose active level (95th percentile of 20-ms frames) is below this "
        "(dBFS)",
    )
    parser.add_argument(
        "--loudness-lufs",
        default="none",
        help="bring each file to this integrated loudness (LUFS), or none (keep its level)",
    )
    parser.add_argument(
        "--peak-dbfs",
        type=float,
        default=schema_default("audio.loudness.peak_dbfs"),
        help="with --loudness-lufs: the highest sample peak allowed (the gain is lowered)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="files decoded and resampled at once"
    )


def parse_expect_count(value: str, fmt: CorpusFormat) -> int | None:
    """``official`` -> the format's official count (none for a table), ``none`` -> None,
    else an integer."""
    if value.lower() in {"none", "null"}:
        return None
    if value == "official":
        return fmt.expected_count
    try:
        return int(value)
    except ValueError:
        raise UserError(
            f"--expect-count {value!r} is not understood; expected official, none or an integer."
        ) from None


def parse_loudness(value: str, *, peak_dbfs: float) -> Loudness:
    """``none`` -> no level normalisation, a number -> that target in LUFS.

    Example:
        >>> parse_loudness("-23", peak_dbfs=-1.0).enabled
        True
    """
    if str(value).lower() in {"none", "null", "off"}:
        return Loudness(enabled=False)
    try:
        target = float(value)
    except ValueError:
        raise UserError(
            f"--loudness-lufs {value!r} is not understood; expected a loudness in LUFS "
            "(e.g. -23) or none."
        ) from None
    return Loudness(enabled=True, target_lufs=target, peak_dbfs=peak_dbfs)


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo prepare``."""
    try:
        label_map = json.loads(args.label_map)
        target_labels = json.loads(args.target_labels)
        reader_options = json.loads(args.reader_options)
    except json.JSONDecodeError as error:
        raise UserError(
            f"--label-map/--target-labels/--reader-options must be JSON: {error}"
        ) from None
    fmt = get_format(args.format or args.corpus, reader_options, corpus=args.corpus)
    prepared = prepare_corpus(
        corpus=args.corpus,
        fmt=fmt,
        raw_dir=args.raw,
        out_dir=args.out,
        target_labels=target_labels,
        label_map=label_map,
        expect_count=parse_expect_count(args.expect_count, fmt),
        sample_rate=args.sample_rate,
        checks=AudioChecks(
            min_duration_s=args.min_duration,
            silence_dbfs=args.silence_dbfs,
            min_sample_rate=args.min_sample_rate,
        ),
        loudness=parse_loudness(args.loudness_lufs, peak_dbfs=args.peak_dbfs),
        threads=args.threads,
    )
    write_outputs(
        prepared,
        manifest_path=args.manifest,
        rejects_path=args.rejects,
        summary_path=args.summary,
    )
    log_summary(prepared.summary, rejects_path=args.rejects)
    if prepared.summary["kept"] == 0:
        raise UserError(
            f"corpus '{args.corpus}': no usable recording has a target label "
            f"(usable {prepared.summary['usable']}, rejected {prepared.summary['rejected']}); "
            f"see {args.rejects} and corpora.{args.corpus}.label_map."
        )
    return 0
