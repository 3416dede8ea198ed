"""What every corpus reader provides: a listing of utterances parsed from a folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

#: Columns of :attr:`Listing.utterances`, in order. Readers may add more after these; the
#: manifest keeps them after its own columns.
LISTING_COLUMNS = [
    "utterance_id",
    "source_path",
    "speaker",
    "gender",
    "sentence",
    "original_label",
]


#: Columns of :attr:`Listing.rejected`.
REJECTED_COLUMNS = ["source_path", "utterance_id", "reason"]


@dataclass
class Listing:
    """Utterances found in a corpus folder.

    Attributes:
        utterances: one row per usable file name, columns :data:`LISTING_COLUMNS`
            (``source_path`` absolute, ``gender`` ``"female"``/``"male"``/``""``).
        unparsed: files that are not part of the corpus as named, with the reason
            (columns ``source_path`` and ``reason``); they go to the rejects CSV as
            ``not part of the corpus: <reason>``.
        rejected: entries the corpus names but that cannot be used (a table's missing file,
            duplicate row, unknown label, path outside the folder), columns
            :data:`REJECTED_COLUMNS`; they go to the rejects CSV with their reason as is.
        labels: the corpus' own labels, for readers that learn them from the data (a table);
            empty when the format's :attr:`CorpusFormat.labels` are fixed.
        ignored: files in the folder that are not audio (by suffix), counted per suffix
            (``"(none)"`` without one), so that every file is accounted for.
    """

    utterances: pd.DataFrame
    unparsed: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["source_path", "reason"])
    )
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REJECTED_COLUMNS))
    labels: tuple[str, ...] = ()
    ignored: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CorpusFormat:
    """A corpus' naming convention, labels and official size.

    Attributes:
        name: registry key (``emodb``, ``ravdess``, ``cremad``, ``table``, ``audformat``).
        labels: the corpus' own emotion labels, as the reader reports them; empty for a
            generic source (a table), whose labels come from its data (:attr:`Listing.labels`).
        default_label_map: each own label onto the default target label set
            (EmoDB's seven), ``None`` to drop it; config's ``label_map`` overrides keys.
            Empty for a generic source: each label maps onto itself (kept when it is a target).
        expected_count: utterances in the official release (speech only); ``None`` when
            there is no official release (a generic source).
        list_utterances: parses a folder (searched recursively) into a :class:`Listing`.
        sample_rate: the official release's sample rate, for the synthetic generator.
    """

    name: str
    labels: tuple[str, ...]
    default_label_map: dict[str, str | None]
    expected_count: int | None
    list_utterances: Callable[[Path], Listing]
    sample_rate: int
