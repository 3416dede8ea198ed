"""``serhpo export-table``: describe a corpus folder by a table, as a generic corpus reads it.

Lists a corpus with its reader (say, EmoDB's file-name parser) and writes one row per file:
``file`` (relative to the corpus folder), ``speaker``, ``emotion``, ``gender``, ``sentence`` and
the reader's other columns, as a CSV table (``format: table``) or an audformat database
(``format: audformat``). A starting point for your own corpus, and the README's worked example.

Example:
    $ serhpo synthesize --format emodb --out my-corpus --speakers 4
    $ serhpo export-table --format emodb --raw my-corpus   # writes my-corpus/table.csv
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path, PurePath

import pandas as pd

from serhpo.corpora import LISTING_COLUMNS, get_format
from serhpo.corpora.table import DEFAULT_TABLE_NAME
from serhpo.errors import UserError

log = logging.getLogger(__name__)

#: The first columns of an exported table (the generic sources' default column names).
TABLE_COLUMNS = ["file", "speaker", "emotion", "gender", "sentence"]


def corpus_table(
    fmt: str, raw_dir: Path, *, options: dict | None = None, corpus: str | None = None
) -> pd.DataFrame:
    """One row per file the reader of ``fmt`` lists under ``raw_dir``.

    Columns :data:`TABLE_COLUMNS` then the reader's extra columns; ``file`` is relative to
    ``raw_dir`` with ``/`` separators. Files the reader does not list (other names, rejected
    rows) are left out and counted in the log.

    Raises:
        UserError: the folder holds no file of the corpus.

    Example:
        >>> corpus_table("emodb", Path("my-corpus")).iloc[0, :3].tolist()  # doctest: +SKIP
        ['wav/03a01Fa.wav', '03', 'happiness']
    """
    reader = get_format(fmt, options, corpus=corpus or fmt)
    listing = reader.list_utterances(Path(raw_dir))
    utterances = listing.utterances
    if utterances.empty:
        raise UserError(
            f"{raw_dir} holds no file that the {fmt} reader lists ({len(listing.unparsed)} "
            f"other files, {len(listing.rejected)} rejected rows); expected a {fmt} corpus. "
            "Check --raw and --format."
        )
    left_out = len(listing.unparsed) + len(listing.rejected)
    if left_out:
        log.warning(
            "%d files under %s are not part of the %s corpus: left out", left_out, raw_dir, fmt
        )
    root = os.path.abspath(raw_dir)
    table = pd.DataFrame(
        {
            "file": [
                PurePath(os.path.relpath(p, root)).as_posix() for p in utterances["source_path"]
            ],
            "speaker": utterances["speaker"],
            "emotion": utterances["original_label"],
            "gender": utterances["gender"],
            "sentence": utterances["sentence"],
        }
    )
    for column in utterances.columns:
        if column not in LISTING_COLUMNS:
            table[column] = utterances[column]
    return table.sort_values("file", kind="stable").reset_index(drop=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo export-table``."""
    parser.add_argument(
        "--format", required=True, help="the corpus' reader: emodb, ravdess, cremad, ..."
    )
    parser.add_argument("--raw", type=Path, required=True, help="the corpus folder")
    parser.add_argument(
        "--out",
        type=Path,
        help=f"the CSV table to write (default: {DEFAULT_TABLE_NAME} in the corpus folder; "
        "elsewhere, set corpora.<name>.table to it); its paths are relative to the folder",
    )
    parser.add_argument(
        "--to",
        choices=("table", "audformat"),
        default="table",
        help="table: a CSV file; audformat: an audformat database (db.yaml) in the corpus folder",
    )
    parser.add_argument(
        "--reader-options", default="{}", help="JSON: table/columns/labels of a generic --format"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo export-table``."""
    try:
        options = json.loads(args.reader_options)
    except json.JSONDecodeError as error:
        raise UserError(f"--reader-options must be JSON: {error}") from None
    table = corpus_table(args.format, args.raw, options=options)
    if args.to == "audformat":
        from serhpo.corpora.audformat_source import write_database

        write_database(table, args.raw, name=Path(os.path.abspath(args.raw)).name)
        print(f"wrote an audformat database of {len(table)} files to {args.raw}")
        return 0
    out = args.out or args.raw / DEFAULT_TABLE_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(f"wrote {len(table)} rows ({', '.join(table.columns)}) to {out}")
    return 0
