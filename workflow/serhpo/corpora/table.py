"""Any corpus from a CSV table: a folder of recordings plus one row per file.

The table names each file (a path relative to the corpus folder), its speaker and its
emotion label, optionally the speaker's gender, the sentence and an utterance id; every other
column is kept in the manifest. Column names are set per corpus (``corpora.<name>.columns``),
with audformat's names as defaults: ``file``, ``speaker``, ``emotion``, ``gender``.

A table that cannot be read (missing, not CSV, no rows, a required column missing) stops
preparation before any work, naming what was found and what was expected; a bad row (missing
file, duplicate, ``..`` path, unknown label, ...) is rejected with its reason, see
:mod:`serhpo.corpora.generic`.

Example:
    ``TESS/table.csv``::

        file,speaker,emotion,gender
        OAF_angry/OAF_back_angry.wav,OAF,angry,female
        YAF_sad/YAF_bath_sad.wav,YAF,sad,female

    >>> listing = list_table(Path("TESS"), SourceOptions(corpus="tess"))  # doctest: +SKIP
    >>> listing.utterances[
    ...     ["utterance_id", "speaker", "original_label"]].values.tolist()  # doctest: +SKIP
    [['OAF_back_angry', 'OAF', 'angry'], ['YAF_bath_sad', 'YAF', 'sad']]
"""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path

import pandas as pd

from serhpo.corpora.base import CorpusFormat, Listing
from serhpo.corpora.generic import (
    ROW_COLUMNS,
    SourceOptions,
    extra_column_name,
    listing_from_rows,
)
from serhpo.errors import UserError

log = logging.getLogger(__name__)

#: The table's file name in the corpus folder when ``corpora.<name>.table`` is null.
DEFAULT_TABLE_NAME = "table.csv"


def table_path(root: Path, table: str | None) -> Path:
    """Where a corpus' table is: ``table`` (relative to the corpus folder ``root`` unless
    absolute), or ``root / table.csv``.

    Example:
        >>> table_path(Path("data/TESS"), None), table_path(Path("data/TESS"), "meta/tess.csv")
        (PosixPath('data/TESS/table.csv'), PosixPath('data/TESS/meta/tess.csv'))
    """
    return Path(root) / (table or DEFAULT_TABLE_NAME)


def read_table(path: Path, options: SourceOptions) -> pd.DataFrame:
    """Read a corpus table as strings (cells and column names stripped).

    ``.tsv`` and ``.tab`` files are tab-separated, others comma-separated; a UTF-8 byte order
    mark (as spreadsheets write) is ignored.

    Raises:
        UserError: the file is missing or unreadable, has no rows, or lacks a configured
            column; the message names the columns configured and found, and what to do.
    """
    corpus = options.corpus
    fix = f"Set corpora.{corpus}.table to the table's path (relative to the corpus folder)."
    if not path.is_file():
        nearby = sorted(p.name for p in path.parent.glob("*.csv")) if path.parent.is_dir() else []
        found = f"CSV files beside it: {nearby}" if nearby else "no CSV file beside it"
        default = (
            f" (corpora.{corpus}.table is null, so {DEFAULT_TABLE_NAME} in the corpus folder)"
            if options.table is None
            else ""
        )
        raise UserError(
            f"corpus '{corpus}': no table at {path}{default}; {found}. Expected a CSV table "
            f"with one row per file. {fix}"
        )
    separator = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        table = pd.read_csv(
            path, dtype=str, keep_default_na=False, sep=separator, encoding="utf-8-sig"
        )
    except pd.errors.EmptyDataError:
        raise UserError(
            f"corpus '{corpus}': the table {path} is empty; expected a header line and one row "
            f"per file. Write the table, or point corpora.{corpus}.table at the right file."
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as error:
        raise UserError(
            f"corpus '{corpus}': the table {path} cannot be read as CSV "
            f"({type(error).__name__}: {str(error).strip()}); expected a comma-separated "
            "UTF-8 table (tab-separated when named .tsv). Save it as CSV (UTF-8) and rerun."
        ) from None
    table.columns = [str(column).strip() for column in table.columns]
    table = table.apply(lambda column: column.str.strip())
    _check_columns(table, path=path, options=options)
    if table.empty:
        raise UserError(
            f"corpus '{corpus}': the table {path} has a header ({list(table.columns)}) but no "
            "rows; expected one row per file. Fill the table, or point "
            f"corpora.{corpus}.table at the right file."
        )
    return table


def _check_columns(table: pd.DataFrame, *, path: Path, options: SourceOptions) -> None:
    columns, corpus = options.columns, options.corpus
    required = {"path": columns.path, "speaker": columns.speaker, "label": columns.label}
    required.update({key: getattr(columns, key) for key in ("gender", "sentence", "id")})
    missing = {key: name for key, name in required.items() if name and name not in table.columns}
    if not missing:
        return
    found = list(table.columns)
    hint = ""
    if len(found) == 1 and any(mark in found[0] for mark in (";", "\t", "|")):
        hint = (
            f" The header reads as one column {found[0]!r}: save the table comma-separated "
            "(or tab-separated, named .tsv)."
        )
    settings = ", ".join(f"columns.{key}: {name!r}" for key, name in missing.items())
    raise UserError(
        f"corpus '{corpus}': the table {path} has columns {found}, without the configured "
        f"{settings}; expected {sorted({n for n in required.values() if n})}.{hint} "
        f"Rename the table's columns, or set corpora.{corpus}.columns to its names "
        "(e.g. columns: {path: filename, label: emotion})."
    )


def rows_of(table: pd.DataFrame, *, name: str, options: SourceOptions) -> pd.DataFrame:
    """A read table as :func:`~serhpo.corpora.generic.listing_from_rows`' rows, extras after.

    A ``gender`` or ``sentence`` column is taken when ``columns`` names none; the other
    columns are extras, kept in the manifest, renamed ``table_<name>`` when their name is
    one of the rows' own fields (:func:`~serhpo.corpora.generic.extra_column_name`).
    """
    columns = options.columns
    gender = columns.gender or ("gender" if "gender" in table.columns else None)
    sentence = columns.sentence or ("sentence" if "sentence" in table.columns else None)
    empty = pd.Series("", index=table.index)
    rows = pd.DataFrame(
        {
            # Line 1 is the header (a quoted cell spanning lines would shift the count).
            "location": [f"{name} line {index + 2}" for index in range(len(table))],
            "path": table[columns.path],
            "speaker": table[columns.speaker],
            "original_label": table[columns.label],
            "gender": table[gender] if gender else empty,
            "sentence": table[sentence] if sentence else empty,
        },
        index=table.index,
    )
    if columns.id:
        rows["id"] = table[columns.id]
    used = {columns.path, columns.speaker, columns.label, gender, sentence, columns.id}
    for column in table.columns:
        if column not in used:
            # An unconfigured column named like a field (e.g. 'original_label', 'speaker',
            # 'id') is kept as 'table_<name>': only configured columns carry meaning.
            others = [other for other in table.columns if other != column]
            name = extra_column_name(column, prefix="table_", taken=[*rows.columns, *others])
            if name != column:
                log.warning("the table's column %r is kept in the manifest as %r", column, name)
            rows[name] = table[column]
    return rows


def list_table(root: Path, options: SourceOptions) -> Listing:
    """List the files a corpus table names, checking each row.

    Raises:
        UserError: the table cannot be read (see :func:`read_table`).
    """
    path = table_path(root, options.table)
    table = read_table(path, options)
    rows = rows_of(table, name=path.name, options=options)
    log.info("corpus %s: %d rows of %s (columns %s)", options.corpus, len(rows), path, list(table))
    extras = [column for column in rows.columns if column not in (*ROW_COLUMNS, "id")]
    return listing_from_rows(rows, root=root, labels=options.labels, extra_columns=extras)


def table_format(options: SourceOptions) -> CorpusFormat:
    """The reader of a corpus given as a folder and a CSV table (``format: table``)."""
    return CorpusFormat(
        name="table",
        labels=(),
        default_label_map={},
        expected_count=None,
        list_utterances=partial(list_table, options=options),
        sample_rate=16000,
    )


def table_inputs(root: Path, table: str | None) -> list[Path]:
    """The table file of a local corpus folder, if it exists (for Snakemake to track)."""
    path = table_path(root, table)
    return [path] if os.path.isfile(path) else []
