"""What the generic corpus sources (a CSV table, an audformat database) share.

A generic source names its files in a table, one row per file, instead of in the file names.
This module holds their options from config (``table``, ``columns``, ``labels``) and the row
checks that turn such rows into a :class:`~serhpo.corpora.base.Listing`, so that preparation,
splits, evaluation and the report treat the corpus like a built-in one.

A row the checks refuse becomes a reject with its reason; the other rows are kept:

- ``no path`` / ``no label`` / ``no speaker``: the cell is empty;
- ``outside the folder``: an absolute path, a path with a ``..`` part, or a link that leads
  out of the corpus folder;
- ``duplicate``: a second row for the same file (the first is kept); ``conflicting rows``:
  rows for the same file that disagree on its label or speaker (none is kept);
- ``unknown label``: a label outside the declared ``labels``;
- ``missing``: the folder has no such file;
- ``bad utterance id``: an id (from ``columns.id``) that cannot name a file, or is repeated.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import pandas as pd

from serhpo.corpora.base import LISTING_COLUMNS, REJECTED_COLUMNS, Listing
from serhpo.errors import UserError

#: Columns of the rows :func:`listing_from_rows` reads (``id`` and extras may follow).
ROW_COLUMNS = ["location", "path", "speaker", "original_label", "gender", "sentence"]

#: Names an extra (unconfigured) column can never keep: they carry meaning in the rows or
#: the listing, and only a configured column may fill them.
RESERVED_COLUMNS = frozenset({*ROW_COLUMNS, "id", *LISTING_COLUMNS})

#: Gender spellings read as ``female`` / ``male`` (case-insensitive); others are kept as written.
_GENDERS = {
    **dict.fromkeys(["f", "female", "w", "woman"], "female"),
    **dict.fromkeys(["m", "male", "man"], "male"),
}


@dataclass(frozen=True)
class Columns:
    """Which column of the table holds what (``corpora.<name>.columns`` in config).

    Attributes:
        path: the file, relative to the corpus folder (audformat: the index, ``file``).
        speaker: the speaker id.
        label: the emotion label, the corpus' own (mapped by ``label_map``).
        gender: the speaker's gender; ``None``: a column named ``gender`` when there is one.
        sentence: the text or sentence code; ``None``: a column named ``sentence`` if any.
        id: the utterance id; ``None``: the file name without suffix (with its folders,
            written ``a__b``, when two files share a name).
    """

    path: str = "file"
    speaker: str = "speaker"
    label: str = "emotion"
    gender: str | None = None
    sentence: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class SourceOptions:
    """A generic corpus' options from config.

    Attributes:
        corpus: the corpus' name in config, for messages.
        table: format ``table``: the CSV file (relative paths are relative to the corpus
            folder; ``None``: ``table.csv`` in it); format ``audformat``: the id of the table
            that holds the labels (``None``: every filewise table with the label column).
        columns: which column holds what.
        labels: the corpus' own labels; a row with another label is rejected as unknown.
            ``None``: every label found is one of the corpus' labels.
    """

    corpus: str = "<name>"
    table: str | None = None
    columns: Columns = field(default_factory=Columns)
    labels: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, corpus: str, options: Mapping[str, Any] | None) -> SourceOptions:
        """Read ``table``, ``columns`` and ``labels`` of one ``corpora`` entry.

        Raises:
            UserError: an unknown key, or an empty path, speaker or label column (the schema
                refuses both in a workflow run; this catches them for
                ``serhpo prepare --reader-options`` by hand).

        Example:
            >>> SourceOptions.from_config("tess", {"columns": {"label": "mood"}}).columns.label
            'mood'
        """
        options = dict(options or {})
        allowed_columns = [f.name for f in fields(Columns)]
        unknown = sorted(set(options) - {"table", "columns", "labels"})
        columns = dict(options.get("columns") or {})
        unknown += [f"columns.{key}" for key in sorted(set(columns) - set(allowed_columns))]
        if unknown:
            raise UserError(
                f"corpus '{corpus}': unknown option(s) {unknown} for a table or audformat "
                f"source; expected table, labels and columns.{{{', '.join(allowed_columns)}}}. "
                f"Fix corpora.{corpus} in config.yaml."
            )
        chosen = Columns(**columns)
        empty = [key for key in ("path", "speaker", "label") if not getattr(chosen, key)]
        if empty:
            raise UserError(
                f"corpus '{corpus}': columns.{empty[0]} is empty; expected the name of the "
                f"table's column (default {getattr(Columns(), empty[0])!r}). "
                f"Set corpora.{corpus}.columns.{empty[0]}."
            )
        labels = options.get("labels")
        return cls(
            corpus=corpus,
            table=options.get("table"),
            columns=chosen,
            labels=tuple(str(label) for label in labels) if labels is not None else None,
        )


def extra_column_name(column: str, *, prefix: str, taken: Collection[str] = ()) -> str:
    """The name an extra column keeps: its own, or ``prefix`` + it while that is reserved
    (:data:`RESERVED_COLUMNS`) or ``taken``.

    An extra column never fills a field a configured column fills: a table's own
    ``original_label``, ``speaker``, ``path``, ``gender`` or ``id`` column, when the config
    names other columns for these, is kept under another name and means nothing.

    Example:
        >>> extra_column_name("original_label", prefix="table_")
        'table_original_label'
        >>> extra_column_name("mood", prefix="table_"), extra_column_name("id", prefix="t.")
        ('mood', 't.id')
    """
    name = column
    while name in RESERVED_COLUMNS or name in taken:
        name = prefix + name
    return name


def _reject(row: Mapping[str, Any], category: str, detail: str, *, source_path: str) -> dict:
    return {
        "_order": row["_order"],
        "source_path": source_path,
        "utterance_id": "",
        "reason": f"{category}: {detail} ({row['location']})",
    }


def _relative_path(raw: str) -> tuple[str | None, str]:
    """A table's path as a clean relative POSIX path, or ``None`` with the reason it is not."""
    if not raw:
        return None, "no path: the path cell is empty"
    if PureWindowsPath(raw).drive or raw.startswith(("/", "\\", "~")):
        return None, (
            f"outside the folder: {raw!r} is an absolute path; write paths relative to the "
            "corpus folder"
        )
    parts = PurePosixPath(raw.replace("\\", "/")).parts
    if ".." in parts:
        return None, (
            f"outside the folder: {raw!r} has a '..' part; write paths relative to the corpus "
            "folder, without '..'"
        )
    clean = [part for part in parts if part != "."]
    if not clean:
        return None, f"no path: {raw!r} names the corpus folder itself, not a file"
    return PurePosixPath(*clean).as_posix(), ""


def _flat(path: str) -> str:
    return path.replace("/", "__")


def derived_ids(paths: Sequence[str]) -> list[str]:
    """Utterance ids for files named by relative paths: stems, unless two files share one.

    A shared stem gives way to the path without suffix, folders joined by ``__``; a shared
    one of those (``a.wav`` beside ``a.flac``) to the path with its suffix.

    Example:
        >>> derived_ids(["OAF_angry/OAF_back_angry.wav", "DC/a01.wav", "JE/a01.wav"])
        ['OAF_back_angry', 'DC__a01', 'JE__a01']
    """
    stems = [PurePosixPath(p).stem for p in paths]
    longer = [_flat(str(PurePosixPath(p).with_suffix(""))) for p in paths]
    longest = [_flat(p) for p in paths]
    stem_count, longer_count = Counter(stems), Counter(longer)
    return [
        stem if stem_count[stem] == 1 else (mid if longer_count[mid] == 1 else full)
        for stem, mid, full in zip(stems, longer, longest, strict=True)
    ]


def _bad_id(value: str) -> str:
    if not value:
        return "the id cell is empty"
    if "/" in value or "\\" in value or value in (".", ".."):
        return f"{value!r} cannot be a file name (no / or \\, not . or ..)"
    return ""


def normalise_gender(value: str) -> str:
    """``F``, ``female``, ``w`` ... -> ``female``; ``M``, ``male`` ... -> ``male``; else as is.

    Example:
        >>> normalise_gender("F"), normalise_gender("Male"), normalise_gender("")
        ('female', 'male', '')
    """
    return _GENDERS.get(value.strip().lower(), value.strip())


def _file_problem(full: Path, *, relative: str, root: Path, real_root: Path) -> tuple[str, str]:
    """Why the file a row names cannot be read, as (category, detail); ("", "") if it can."""
    if not os.path.lexists(full):
        return "missing", f"{relative!r} is not in {root}"
    real = Path(os.path.realpath(full))
    if not real.is_relative_to(real_root):
        return "outside the folder", f"{relative!r} links to {real}, outside {root}"
    if full.is_dir():
        return "missing", f"{relative!r} is a folder, not a file"
    if not full.is_file():
        return "missing", f"{relative!r} is a broken link or not a regular file"
    return "", ""


def listing_from_rows(
    rows: pd.DataFrame,
    *,
    root: Path,
    labels: Sequence[str] | None = None,
    extra_columns: Sequence[str] = (),
) -> Listing:
    """Check a generic source's rows and turn the good ones into a :class:`Listing`.

    Args:
        rows: one row per table row, string columns :data:`ROW_COLUMNS` (``location`` says
            where the row is, e.g. ``table.csv line 5``), optionally ``id`` (the utterance
            id; without it ids are :func:`derived_ids`), and ``extra_columns``.
        root: the corpus folder that paths are relative to.
        labels: the corpus' declared labels (others are rejected), or ``None``.
        extra_columns: further columns, kept after :data:`LISTING_COLUMNS`; none may be
            one of :data:`RESERVED_COLUMNS` (see :func:`extra_column_name`).

    Returns:
        The listing: ``utterances`` (``source_path`` absolute, not resolved), ``rejected``
        with a reason per refused row (see the module's docstring), and ``labels`` (the
        declared ones, or every label found, sorted).

    Example:
        >>> rows = pd.DataFrame([["line 2", "a.wav", "s1", "angry", "", ""]],
        ...                     columns=ROW_COLUMNS)
        >>> listing_from_rows(rows, root=Path("corpus")).rejected["reason"].tolist()
        ["missing: 'a.wav' is not in corpus (line 2)"]
    """
    clashing = sorted(set(extra_columns) & RESERVED_COLUMNS)
    if clashing:  # a reader's mistake: name them with extra_column_name
        raise ValueError(f"extra columns {clashing} would overwrite the rows' own fields")
    root_abs = Path(os.path.abspath(root))
    real_root = Path(os.path.realpath(root))
    records = [{**row, "_order": order} for order, row in enumerate(rows.to_dict("records"))]
    ids_given = "id" in rows.columns
    found_labels = sorted({row["original_label"] for row in records if row["original_label"]})
    rejected: list[dict[str, str]] = []

    # Paths: relative, inside the folder, one row per file.
    by_path: dict[str, list[dict[str, Any]]] = {}
    for row in records:
        relative, problem = _relative_path(row["path"])
        if relative is None:
            category, detail = problem.split(": ", 1)
            rejected.append(_reject(row, category, detail, source_path=row["path"]))
            continue
        by_path.setdefault(relative, []).append(row)
    candidates: list[tuple[str, dict[str, Any]]] = []
    for relative, group in by_path.items():
        source_path = str(root_abs / relative)
        if len({(row["original_label"], row["speaker"]) for row in group}) > 1:
            where = ", ".join(row["location"] for row in group)
            said = "; ".join(
                f"label {row['original_label']!r} speaker {row['speaker']!r}" for row in group
            )
            detail = (
                f"{where} name {relative!r} with different labels or speakers ({said}); "
                "keep one row per file"
            )
            rejected += [
                _reject(row, "conflicting rows", detail, source_path=source_path) for row in group
            ]
            continue
        rejected += [
            _reject(
                row,
                "duplicate",
                f"{relative!r} is named again; the row at {group[0]['location']} is kept",
                source_path=source_path,
            )
            for row in group[1:]
        ]
        candidates.append((relative, group[0]))

    # Cells, then the file itself.
    kept: list[tuple[str, dict[str, Any]]] = []
    for relative, row in candidates:
        label = row["original_label"]
        if not label:
            problem = ("no label", "the label cell is empty")
        elif labels is not None and label not in labels:
            problem = (
                "unknown label",
                f"{label!r} is not one of the declared labels {list(labels)}",
            )
        elif not row["speaker"]:
            problem = ("no speaker", "the speaker cell is empty")
        else:
            problem = _file_problem(
                root_abs / relative, relative=relative, root=Path(root), real_root=real_root
            )
        if problem[0]:
            rejected.append(_reject(row, *problem, source_path=str(root_abs / relative)))
        else:
            kept.append((relative, row))

    # Utterance ids: given, or derived from the paths.
    derived = derived_ids([relative for relative, _ in kept])
    utterances: list[dict[str, Any]] = []
    owner: dict[str, str] = {}
    for (relative, row), fallback in zip(kept, derived, strict=True):
        source_path = str(root_abs / relative)
        utterance_id = row["id"] if ids_given else fallback
        problem = _bad_id(utterance_id)
        if not problem and utterance_id in owner:
            problem = f"{utterance_id!r} is also the id of the row at {owner[utterance_id]}"
        if problem:
            rejected.append(_reject(row, "bad utterance id", problem, source_path=source_path))
            continue
        owner[utterance_id] = row["location"]
        utterances.append(
            {
                "utterance_id": utterance_id,
                "source_path": source_path,
                "speaker": row["speaker"],
                "gender": normalise_gender(row["gender"]),
                "sentence": row["sentence"],
                "original_label": row["original_label"],
                **{column: row[column] for column in extra_columns},
            }
        )
    return Listing(
        utterances=pd.DataFrame(utterances, columns=[*LISTING_COLUMNS, *extra_columns]),
        rejected=pd.DataFrame(
            sorted(rejected, key=lambda reject: reject["_order"]), columns=REJECTED_COLUMNS
        ),
        labels=tuple(labels) if labels is not None else tuple(found_labels),
    )
