"""Any corpus published as an audformat database (``db.yaml`` and its tables), as audb writes it.

The database is read with the ``audformat`` package. The label and the speaker are found in
its filewise tables by column or scheme id (``corpora.<name>.columns.label``, default
``emotion``; ``columns.speaker``, default ``speaker``), as in audb's layouts:

- the label in one table (``emotion``) or several (``emotion.categories.train.gold_standard``
  and ``...test...``, often beside ``emotion`` with every file): their rows are read together,
  a file the tables agree on is one row, one they disagree on is rejected as conflicting (set
  ``corpora.<name>.table`` to read one table);
- the speaker in another table (``files``) joined by file, its scheme's labels a dict or a
  misc table (``speaker``) that holds the gender (and age): these are read through audformat's
  label mapping;
- the gender as a column of its own, or in the speaker's labels; when none is found it is
  unknown (``""``), unless ``columns.gender`` names it, which then must exist.

The other columns of those tables (and the speaker's other fields, e.g. age) are kept in the
manifest. Rows then go through the same checks as a CSV table's (:mod:`serhpo.corpora.generic`).

Example:
    >>> listing = list_database(Path("emodb-audb"), SourceOptions(corpus="x"))  # doctest: +SKIP
    >>> listing.utterances.iloc[0][
    ...     ["utterance_id", "speaker", "gender", "original_label"]]  # doctest: +SKIP
    ['03a01Fa', '3', 'male', 'happiness']
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from serhpo.corpora.base import CorpusFormat, Listing
from serhpo.corpora.generic import (
    ROW_COLUMNS,
    SourceOptions,
    extra_column_name,
    listing_from_rows,
)
from serhpo.errors import UserError

if TYPE_CHECKING:  # audformat is imported when a database is read or written
    import audformat

log = logging.getLogger(__name__)

#: The database's header file in its folder.
HEADER_NAME = "db.yaml"


@contextmanager
def _quiet_audformat() -> Iterator[None]:
    """Silence audformat 1.4's pandas deprecation warnings (its code, not ours, uses inplace)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"audformat\.")
        yield


def load_database(root: Path, *, corpus: str) -> audformat.Database:
    """Load the audformat database in ``root`` with its tables.

    Raises:
        UserError: there is no ``db.yaml`` in ``root``, or audformat cannot load it.
    """
    import audformat

    root = Path(root)
    header = root / HEADER_NAME
    if not header.is_file():
        found = sorted(p.name for p in root.iterdir())[:10] if root.is_dir() else []
        raise UserError(
            f"corpus '{corpus}': no {HEADER_NAME} in {root} (found {found}); expected an "
            "audformat database folder (db.yaml and its tables, as audb writes it). Point "
            f"corpora.{corpus}.source at that folder, or use format: table for a CSV table."
        )
    try:
        with _quiet_audformat():
            return audformat.Database.load(str(root), load_data=True)
    except Exception as error:  # audformat raises many kinds; all mean "cannot be read"
        raise UserError(
            f"corpus '{corpus}': audformat cannot load the database in {root} "
            f"({type(error).__name__}: {error}); expected a database that "
            "audformat.Database.load reads. Check db.yaml and its table files."
        ) from error


def describe(db: audformat.Database) -> str:
    """The database's tables with their columns (and schemes), for messages.

    Example:
        >>> describe(db)  # doctest: +SKIP
        "filewise tables {'files': ['speaker (scheme speaker)']}; segmented tables {}"
    """

    def columns(table_id: str) -> list[str]:
        return [
            f"{column_id} (scheme {column.scheme_id})" if column.scheme_id else column_id
            for column_id, column in db[table_id].columns.items()
        ]

    filewise = {t: columns(t) for t in db.tables if db[t].is_filewise}
    segmented = {t: columns(t) for t in db.tables if not db[t].is_filewise}
    return f"filewise tables {filewise}; segmented tables {segmented}"


def matching_columns(
    db: audformat.Database, tables: Iterable[str], name: str
) -> list[tuple[str, str]]:
    """(table id, column id) of every column of ``tables`` whose id or scheme id is ``name``."""
    return [
        (table_id, column_id)
        for table_id in tables
        for column_id, column in db[table_id].columns.items()
        if name in (column_id, column.scheme_id)
    ]


def label_fields(db: audformat.Database, scheme_id: str | None) -> list[str]:
    """The fields a scheme's labels map to: a dict's keys or a misc table's columns."""
    if not scheme_id or scheme_id not in db.schemes:
        return []
    labels = db.schemes[scheme_id].labels
    if isinstance(labels, str) and labels in db.misc_tables:
        return list(db[labels].columns)
    if isinstance(labels, dict):
        return sorted(
            {key for value in labels.values() if isinstance(value, dict) for key in value}
        )
    return []


def _strings(series: pd.Series) -> pd.Series:
    """Values as strings, missing ones as ``""``; one value per file (the first)."""
    series = series[~series.index.duplicated()]
    return series.astype(object).map(lambda value: "" if pd.isna(value) else str(value))


def _first_of(db: audformat.Database, found: list[tuple[str, str]], **get: Any) -> pd.Series:
    """The first non-empty value per file over the ``found`` columns (``get``: e.g. ``map``)."""
    values = pd.concat([_strings(db[table][column].get(**get)) for table, column in found])
    values = values[values != ""]
    return values[~values.index.duplicated()]


def _stop(options: SourceOptions, db: audformat.Database, what: str, key: str) -> UserError:
    return UserError(
        f"corpus '{options.corpus}': {what} in the audformat database ({describe(db)}). "
        f"Set corpora.{options.corpus}.{key} to a filewise table's column or scheme id."
    )


def list_database(root: Path, options: SourceOptions) -> Listing:
    """List the files an audformat database names, with label, speaker and gender.

    Raises:
        UserError: the database cannot be loaded, or has no filewise table with the label or
            speaker column (the message lists the tables and columns found).
    """
    with _quiet_audformat():
        return _list_database(root, options)


def _list_database(root: Path, options: SourceOptions) -> Listing:
    db = load_database(root, corpus=options.corpus)
    columns = options.columns
    filewise = [t for t in db.tables if db[t].is_filewise]
    if options.table is not None:
        if options.table not in db.tables:
            raise _stop(options, db, f"there is no table {options.table!r}", "table")
        if options.table not in filewise:
            raise _stop(
                options,
                db,
                f"table {options.table!r} is segmented; serhpo reads one label per file",
                "table",
            )
    label_found = matching_columns(
        db, [options.table] if options.table else filewise, columns.label
    )
    if not label_found:
        segmented = matching_columns(db, sorted(set(db.tables) - set(filewise)), columns.label)
        where = f" (only segmented tables {[t for t, _ in segmented]} have it)" if segmented else ""
        raise _stop(
            options, db, f"no filewise table has a column {columns.label!r}{where}", "columns.label"
        )
    speaker_found = matching_columns(db, filewise, columns.speaker)
    if not speaker_found:
        raise _stop(
            options, db, f"no filewise table has a column {columns.speaker!r}", "columns.speaker"
        )

    pieces = []
    for table_id, column_id in label_found:
        labels = db[table_id][column_id].get()
        pieces.append(
            pd.DataFrame(
                {
                    "location": f"table {table_id}",
                    "path": labels.index.astype(str),
                    "original_label": _strings(labels.reset_index(drop=True)).to_numpy(),
                }
            )
        )
    # A file in several label tables (audb's emotion beside its train and test gold standards)
    # is one row where they agree; where they disagree, the rows are rejected as conflicting.
    rows = (
        pd.concat(pieces, ignore_index=True)
        .groupby(["path", "original_label"], sort=False, as_index=False)
        .agg(location=("location", ", ".join))
    )
    files = rows["path"]

    def per_file(values: pd.Series) -> list[str]:
        return values.reindex(files).fillna("").to_list()

    rows["speaker"] = per_file(_first_of(db, speaker_found))
    used = {*label_found, *speaker_found}
    gender_name = columns.gender or "gender"
    gender_found = matching_columns(db, filewise, gender_name)
    speaker_scheme = db[speaker_found[0][0]].columns[speaker_found[0][1]].scheme_id
    mapped_fields = label_fields(db, speaker_scheme)
    if gender_found:
        rows["gender"] = per_file(_first_of(db, gender_found))
        used.update(gender_found)
        gender_from = f"column(s) {gender_found}"
    elif gender_name in mapped_fields:
        rows["gender"] = per_file(_first_of(db, speaker_found[:1], map=gender_name))
        gender_from = f"the labels of scheme {speaker_scheme!r}"
    elif columns.gender:
        raise _stop(
            options,
            db,
            f"neither a filewise column nor the speaker's labels {mapped_fields} hold the "
            f"gender {columns.gender!r}",
            "columns.gender",
        )
    else:
        rows["gender"] = ""
        gender_from = "nowhere (unknown)"
    sentence_found = matching_columns(db, filewise, columns.sentence or "sentence")
    rows["sentence"] = per_file(_first_of(db, sentence_found)) if sentence_found else ""
    used.update(sentence_found)
    if columns.id:
        id_found = matching_columns(db, filewise, columns.id)
        if not id_found:
            raise _stop(options, db, f"no filewise table has a column {columns.id!r}", "columns.id")
        rows["id"] = per_file(_first_of(db, id_found))
        used.update(id_found)
    if columns.sentence and not sentence_found:
        raise _stop(
            options, db, f"no filewise table has a column {columns.sentence!r}", "columns.sentence"
        )

    # Every other column of the tables read, and the speaker's other fields (e.g. age).
    extra_found: dict[str, list[tuple[str, str]]] = {}
    for table_id in dict.fromkeys(t for t, _ in [*label_found, *speaker_found]):
        for column_id in db[table_id].columns:
            if (table_id, column_id) not in used:
                # A column named like a field (e.g. 'id' when columns.id is unset) is renamed.
                name = extra_column_name(column_id, prefix=f"{table_id}.", taken=rows.columns)
                extra_found.setdefault(name, []).append((table_id, column_id))
    for name, found in extra_found.items():
        rows[name] = per_file(_first_of(db, found))
    extras = list(extra_found)
    for name in mapped_fields:
        if name != gender_name and name not in rows.columns:
            key = extra_column_name(name, prefix="speaker.", taken=rows.columns)
            rows[key] = per_file(_first_of(db, speaker_found[:1], map=name))
            extras.append(key)

    label_scheme = db[label_found[0][0]].columns[label_found[0][1]].scheme_id
    declared = options.labels
    if declared is None and label_scheme in db.schemes and db.schemes[label_scheme].labels:
        declared = tuple(str(label) for label in db.schemes[label_scheme].labels_as_list)
    log.info(
        "corpus %s: audformat database %r in %s; labels from %s, speakers from %s, gender "
        "from %s; declared labels %s; kept columns %s",
        options.corpus,
        db.name,
        root,
        label_found,
        speaker_found,
        gender_from,
        list(declared) if declared is not None else "none",
        extras,
    )
    rows = rows[[*ROW_COLUMNS, *(["id"] if "id" in rows.columns else []), *extras]]
    return listing_from_rows(rows, root=root, labels=declared, extra_columns=extras)


def audformat_format(options: SourceOptions) -> CorpusFormat:
    """The reader of a corpus given as an audformat database (``format: audformat``)."""
    return CorpusFormat(
        name="audformat",
        labels=(),
        default_label_map={},
        expected_count=None,
        list_utterances=partial(list_database, options=options),
        sample_rate=16000,
    )


def database_inputs(root: Path) -> list[Path]:
    """The database's header and table files in a local folder (for Snakemake to track)."""
    root = Path(root)
    if not (root / HEADER_NAME).is_file():
        return []
    return sorted(p for p in root.glob("db.*") if p.suffix in (".yaml", ".csv", ".parquet", ".pkl"))


def write_database(files: pd.DataFrame, root: Path, *, name: str, description: str = "") -> None:
    """Write an audformat database for the recordings in ``root``, in audb's layout.

    Tables: ``emotion`` (column ``emotion``), ``files`` (``speaker`` and the extra columns);
    the misc table ``speaker`` holds each speaker's gender. Saved as CSV tables.

    Args:
        files: one row per file, columns ``file`` (relative to ``root``), ``speaker``,
            ``emotion``, ``gender`` (``""`` when unknown) and any extra (string) columns.
        root: the corpus folder; ``db.yaml`` and ``db.*.csv`` are written into it.
        name: the database's name.
        description: what it is.
    """
    import audformat

    db = audformat.Database(
        name=name, source="serhpo", usage="unrestricted", description=description
    )
    db.schemes["emotion"] = audformat.Scheme("str", labels=sorted(set(files["emotion"])))
    db.schemes["gender"] = audformat.Scheme("str")
    speakers = files.drop_duplicates("speaker").set_index("speaker")["gender"]
    db["speaker"] = audformat.MiscTable(
        pd.Index(list(speakers.index), name="speaker", dtype="string")
    )
    db["speaker"]["gender"] = audformat.Column(scheme_id="gender")
    db["speaker"]["gender"].set([gender or None for gender in speakers])
    db.schemes["speaker"] = audformat.Scheme("str", labels="speaker")
    index = audformat.filewise_index(list(files["file"]))
    db["files"] = audformat.Table(index)
    db["files"]["speaker"] = audformat.Column(scheme_id="speaker")
    db["files"]["speaker"].set(list(files["speaker"]))
    for column in files.columns:
        if column not in ("file", "speaker", "emotion", "gender"):
            db["files"][column] = audformat.Column()
            db["files"][column].set(["" if pd.isna(v) else str(v) for v in files[column]])
    db["emotion"] = audformat.Table(index)
    db["emotion"]["emotion"] = audformat.Column(scheme_id="emotion")
    db["emotion"]["emotion"].set(list(files["emotion"]))
    with _quiet_audformat():
        db.save(str(root), storage_format="csv")
