"""Corpus readers (EmoDB, RAVDESS, CREMA-D, a CSV table, an audformat database), download and
the synthetic generator."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from serhpo.corpora.base import LISTING_COLUMNS, CorpusFormat, Listing
from serhpo.corpora.cremad import CREMAD
from serhpo.corpora.emodb import EMODB
from serhpo.corpora.ravdess import RAVDESS
from serhpo.errors import UserError

#: The built-in readers, which know their corpus' file names.
FORMATS: dict[str, CorpusFormat] = {fmt.name: fmt for fmt in (EMODB, RAVDESS, CREMAD)}

#: Readers of corpora the user describes: a folder plus a CSV table, or an audformat database.
GENERIC_FORMATS: tuple[str, ...] = ("table", "audformat")


def get_format(
    name: str, options: Mapping[str, Any] | None = None, *, corpus: str | None = None
) -> CorpusFormat:
    """Return the corpus reader registered as ``name``.

    Args:
        name: a built-in format (``emodb``, ``ravdess``, ``cremad``) or a generic one
            (``table``, ``audformat``).
        options: a generic format's ``table``, ``columns`` and ``labels`` from config;
            the built-in formats read none.
        corpus: the corpus' name in config, for messages (default ``name``).

    Raises:
        ValueError: naming the formats that exist.
        UserError: a generic format's options are not understood.

    Example:
        >>> get_format("table", {"columns": {"label": "mood"}}, corpus="tess").name
        'table'
    """
    if name == "table":
        from serhpo.corpora.generic import SourceOptions
        from serhpo.corpora.table import table_format

        return table_format(SourceOptions.from_config(corpus or name, options))
    if name == "audformat":
        from serhpo.corpora.audformat_source import audformat_format
        from serhpo.corpora.generic import SourceOptions

        return audformat_format(SourceOptions.from_config(corpus or name, options))
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(
            f"unknown corpus format {name!r}; expected one of "
            f"{[*sorted(FORMATS), *GENERIC_FORMATS]}. "
            "Set corpora.<name>.format in config.yaml to one of these."
        ) from None


def format_name(corpus: str, entry: Mapping[str, Any]) -> str:
    """The reader of one ``corpora`` entry: its ``format``, or else the corpus' name.

    Raises:
        UserError: neither names a reader (say, a corpus called ``tess`` without
            ``format: table``).

    Example:
        >>> format_name("tess", {"format": "table"}), format_name("emodb", {"format": None})
        ('table', 'emodb')
    """
    name = entry.get("format") or corpus
    if name not in FORMATS and name not in GENERIC_FORMATS:
        raise UserError(
            f"corpus '{corpus}' has no reader: corpora.{corpus}.format is "
            f"{entry.get('format')!r}, and {corpus!r} is not a built-in corpus "
            f"({', '.join(FORMATS)}). Set corpora.{corpus}.format to table (a folder plus a "
            "CSV table), audformat (an audformat database) or a built-in format."
        )
    return name


def source_inputs(name: str, folder: Path, options: Mapping[str, Any] | None = None) -> list[Path]:
    """The table files a local generic corpus folder is described by, where they exist.

    Snakemake tracks them, so that editing a table reruns the corpus' preparation. Built-in
    formats have none.
    """
    if name == "table":
        from serhpo.corpora.table import table_inputs

        return table_inputs(Path(folder), (options or {}).get("table"))
    if name == "audformat":
        from serhpo.corpora.audformat_source import database_inputs

        return database_inputs(Path(folder))
    return []


__all__ = [
    "FORMATS",
    "GENERIC_FORMATS",
    "LISTING_COLUMNS",
    "CorpusFormat",
    "Listing",
    "format_name",
    "get_format",
    "source_inputs",
]
