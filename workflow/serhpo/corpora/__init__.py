"""Corpus readers (EmoDB, RAVDESS, CREMA-D), download and the synthetic generator."""

from __future__ import annotations

from serhpo.corpora.base import LISTING_COLUMNS, CorpusFormat, Listing
from serhpo.corpora.cremad import CREMAD
from serhpo.corpora.emodb import EMODB
from serhpo.corpora.ravdess import RAVDESS

FORMATS: dict[str, CorpusFormat] = {fmt.name: fmt for fmt in (EMODB, RAVDESS, CREMAD)}


def get_format(name: str) -> CorpusFormat:
    """Return the corpus format registered as ``name``.

    Raises:
        ValueError: naming the formats that exist.
    """
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(
            f"unknown corpus format {name!r}; expected one of {sorted(FORMATS)}. "
            "Set corpora.<name>.format in config.yaml to one of these."
        ) from None


__all__ = ["FORMATS", "LISTING_COLUMNS", "CorpusFormat", "Listing", "get_format"]
