"""Tests of serhpo.normalisation: per-group standardisation, never using labels."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from serhpo.data import FeatureItem
from serhpo.errors import UserError
from serhpo.normalisation import group_keys, normalise_items, standardise_items


def _vectors(rows: list[list[float]]) -> list[FeatureItem]:
    return [FeatureItem(values=torch.tensor(row), valid_frames=1) for row in rows]


def test_each_speaker_is_standardised_with_its_own_statistics() -> None:
    # Speaker b is speaker a shifted by +100 and scaled by 10: after standardisation both are equal.
    a = [[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]]
    b = [[100 + 10 * x for x in row] for row in a]
    utterances = [SimpleNamespace(corpus="c", speaker=s) for s in "aaabbb"]
    out = normalise_items(_vectors(a + b), utterances, mode="speaker", sequence=False)
    values = torch.stack([item.values for item in out])
    assert torch.allclose(values[:3], values[3:], atol=1e-5)
    assert torch.allclose(values[:3].mean(dim=0), torch.zeros(2), atol=1e-6)
    assert torch.allclose(values[:3].std(dim=0, unbiased=False), torch.ones(2), atol=1e-5)


def test_corpus_mode_keeps_differences_between_speakers_of_one_corpus() -> None:
    utterances = [SimpleNamespace(corpus="c", speaker=s) for s in "aabb"]
    out = normalise_items(
        _vectors([[0.0], [2.0], [10.0], [12.0]]), utterances, mode="corpus", sequence=False
    )
    values = [item.values.item() for item in out]
    assert values[0] < values[1] < values[2] < values[3]
    assert sum(values) == pytest.approx(0.0, abs=1e-6)


def test_none_returns_the_items_unchanged() -> None:
    items = _vectors([[1.0], [5.0]])
    utterances = [SimpleNamespace(corpus="c", speaker="a")] * 2
    assert normalise_items(items, utterances, mode="none", sequence=False) == items


def test_sequences_use_real_frames_only_and_padding_stays_zero() -> None:
    # Padding frames hold a huge value that must not enter the statistics.
    first = torch.tensor([[1.0], [3.0], [1e6]])
    second = torch.tensor([[5.0], [7.0], [1e6]])
    items = [FeatureItem(first, valid_frames=2), FeatureItem(second, valid_frames=2)]
    out = standardise_items(items, ["g", "g"], sequence=True)
    real = torch.cat([out[0].values[:2], out[1].values[:2]])
    assert real.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert real.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    assert out[0].values[2].item() == 0.0 and out[1].values[2].item() == 0.0
    assert items[0].values[2].item() == 1e6  # the input is not modified


def test_a_constant_dimension_is_centred_not_divided_by_zero() -> None:
    out = standardise_items(_vectors([[4.0, 1.0], [4.0, 3.0]]), ["g", "g"], sequence=False)
    assert [item.values[0].item() for item in out] == [0.0, 0.0]
    assert all(torch.isfinite(item.values).all() for item in out)


def test_multi_dimensional_vectors_keep_their_shape() -> None:
    items = [FeatureItem(torch.randn(5, 4), 1) for _ in range(3)]
    out = standardise_items(items, ["g"] * 3, sequence=False)
    assert [tuple(item.values.shape) for item in out] == [(5, 4)] * 3
    stacked = torch.stack([item.values for item in out])
    assert torch.allclose(stacked.mean(dim=0), torch.zeros(5, 4), atol=1e-5)


def test_group_keys_separate_speakers_of_different_corpora() -> None:
    utterances = [
        SimpleNamespace(corpus="a", speaker="1"),
        SimpleNamespace(corpus="b", speaker="1"),
    ]
    assert len(set(group_keys(utterances, "speaker"))) == 2
    assert group_keys(utterances, "corpus") == ["a", "b"]


def test_an_unknown_mode_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(UserError, match="expected one of"):
        group_keys([], "global")
