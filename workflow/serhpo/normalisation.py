"""Unsupervised feature standardisation per corpus or per speaker (domain normalisation).

A model trained on one corpus sees another corpus' features shifted by its recording level,
channel and speakers. Standardising each group of utterances (a corpus, or one speaker of a
corpus) with that group's own mean and standard deviation removes much of that shift. It is
unsupervised: the statistics come from the features alone, never from labels, so a test or
zero-shot corpus is standardised with its own statistics at evaluation time, exactly as the
training corpus was during training.

Modes (config key ``normalise``, a training key that may also be searched):

======== =====================================================================
none     features as computed (the paper)
corpus   one mean and standard deviation per corpus
speaker  one mean and standard deviation per speaker of each corpus
======== =====================================================================

Vectors (eGeMAPS functionals, pooled encoder outputs, per-layer stacks) are standardised
element-wise across the group's utterances; frame sequences (log-Mel spectrograms) per
feature dimension across all real frames of the group, padding left at zero.

Example:
    >>> items = [FeatureItem(torch.tensor([1.0, 10.0]), 1),
    ...          FeatureItem(torch.tensor([3.0, 30.0]), 1)]
    >>> out = standardise_items(items, ["s1", "s1"], sequence=False)
    >>> [item.values.tolist() for item in out]
    [[-1.0, -1.0], [1.0, 1.0]]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Protocol

import torch

from serhpo.data import FeatureItem
from serhpo.errors import UserError

#: The values of the ``normalise`` key.
NORMALISE_MODES = ("none", "corpus", "speaker")

#: Standard deviations below this count as constant: such a dimension is only centred.
_MIN_STD = 1e-6


class _Grouped(Protocol):
    corpus: str
    speaker: str


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`NORMALISE_MODES`.

    Raises:
        UserError: naming the value found and the allowed ones.

    Example:
        >>> check_mode("speaker")
        'speaker'
    """
    if mode not in NORMALISE_MODES:
        raise UserError(
            f"normalise is {mode!r}; expected one of {list(NORMALISE_MODES)}. Set training."
            "normalise (or the search-space parameter normalise) to one of these."
        )
    return mode


def group_keys(utterances: Sequence[_Grouped], mode: str) -> list[str]:
    """The standardisation group of each utterance under ``mode``.

    Example:
        >>> from types import SimpleNamespace as U
        >>> group_keys([U(corpus="emodb", speaker="03"), U(corpus="ravdess", speaker="03")],
        ...            "speaker")
        ['emodb/03', 'ravdess/03']
    """
    check_mode(mode)
    if mode == "speaker":
        return [f"{u.corpus}/{u.speaker}" for u in utterances]
    return [u.corpus for u in utterances]


def _frames(item: FeatureItem, *, sequence: bool) -> torch.Tensor:
    """The values that enter the statistics: real frames of a sequence, the whole vector."""
    values = item.values.float()
    if sequence:
        return values[: item.valid_frames].reshape(item.valid_frames, -1)
    return values.reshape(1, -1)


def group_statistics(
    items: Sequence[FeatureItem], *, sequence: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation (flattened per frame) over ``items``' real values.

    Example:
        >>> mean, std = group_statistics([FeatureItem(torch.tensor([2.0]), 1)], sequence=False)
        >>> mean.tolist(), std.tolist()
        ([2.0], [0.0])
    """
    stacked = torch.cat([_frames(item, sequence=sequence) for item in items]).double()
    mean = stacked.mean(dim=0)
    std = stacked.std(dim=0, unbiased=False) if len(stacked) > 1 else torch.zeros_like(mean)
    return mean.float(), std.float()


def standardise_items(
    items: Sequence[FeatureItem],
    groups: Sequence[Hashable],
    *,
    sequence: bool,
) -> list[FeatureItem]:
    """Standardise each group of items with the group's own mean and standard deviation.

    Args:
        items: cached features of one part or corpus.
        groups: the group of each item (:func:`group_keys`), same length as ``items``.
        sequence: True for frame sequences ``(frames, ...)`` (statistics over real frames,
            padding stays zero), False for vectors of any shape (element-wise over items).

    Returns:
        New items in the same order; ``items`` are not modified. A dimension that is
        constant within a group (or a group of one vector) is centred only.

    Raises:
        ValueError: when ``groups`` and ``items`` differ in length.
    """
    if len(groups) != len(items):
        raise ValueError(f"{len(items)} items but {len(groups)} group keys")
    members: dict[Hashable, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    out: list[FeatureItem | None] = [None] * len(items)
    for indices in members.values():
        mean, std = group_statistics([items[i] for i in indices], sequence=sequence)
        scale = torch.where(std > _MIN_STD, std, torch.ones_like(std))
        for i in indices:
            item = items[i]
            values = item.values.float()
            if sequence:
                flat = values.reshape(values.shape[0], -1)
                normalised = (flat - mean) / scale
                normalised[item.valid_frames :] = 0.0
                values = normalised.reshape(values.shape)
            else:
                values = ((values.reshape(-1) - mean) / scale).reshape(values.shape)
            out[i] = FeatureItem(values=values, valid_frames=item.valid_frames)
    return [item for item in out if item is not None]


def normalise_items(
    items: Sequence[FeatureItem],
    utterances: Sequence[_Grouped],
    *,
    mode: str,
    sequence: bool,
) -> list[FeatureItem]:
    """Standardise ``items`` per corpus or per speaker of their ``utterances``; ``none``: as is.

    Example:
        >>> out = normalise_items(items, utts, mode="speaker", sequence=False)  # doctest: +SKIP
    """
    if check_mode(mode) == "none":
        return list(items)
    return standardise_items(items, group_keys(utterances, mode), sequence=sequence)
