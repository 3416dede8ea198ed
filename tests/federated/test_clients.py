from __future__ import annotations

from pathlib import Path

import pytest
import torch

from serhpo.data import FeatureItem, Utterance
from serhpo.errors import UserError
from serhpo.federated.clients import (
    load_shards,
    pool_statistics,
    save_shards,
    speaker_shards,
    statistics_buffers,
)
from serhpo.models import build_model


def utterance(index: int, speaker: str) -> Utterance:
    return Utterance(f"u{index}", "c", Path(f"{index}.wav"), "anger", speaker, 16000)


def test_each_speaker_becomes_one_client_with_only_its_own_utterances() -> None:
    speakers = ["b", "a", "b", "c", "a", "b"]
    utterances = [utterance(i, s) for i, s in enumerate(speakers)]
    items = [FeatureItem(torch.full((3,), float(i)), 1) for i in range(len(speakers))]
    shards = speaker_shards(utterances, items, [0, 1, 2, 0, 1, 2])
    assert [s.speaker for s in shards] == ["b", "a", "c"]  # first-seen order
    b = shards[0]
    assert b.size == 3 and b.targets.tolist() == [0, 2, 2]
    assert [item.values[0].item() for item in b.items] == [0.0, 2.0, 5.0]


def test_one_speaker_cannot_be_federated() -> None:
    utterances = [utterance(i, "solo") for i in range(3)]
    items = [FeatureItem(torch.zeros(2), 1)] * 3
    with pytest.raises(UserError, match="at least two speakers"):
        speaker_shards(utterances, items, [0, 0, 1])


def test_shards_survive_the_file_the_client_processes_read(tmp_path: Path) -> None:
    utterances = [utterance(i, s) for i, s in enumerate(["x", "y", "x"])]
    items = [FeatureItem(torch.randn(5 + i, 4), 5 + i) for i in range(3)]
    shards = speaker_shards(utterances, items, [1, 0, 1])
    loaded = load_shards(save_shards(shards, tmp_path / "clients.pt"))
    assert [s.speaker for s in loaded] == ["x", "y"]
    for original, copy in zip(shards, loaded, strict=True):
        assert torch.equal(original.targets, copy.targets)
        for a, b in zip(original.items, copy.items, strict=True):
            assert torch.equal(a.values, b.values) and a.valid_frames == b.valid_frames
    assert load_shards(tmp_path / "clients.pt") is loaded  # once per process


def test_pooled_statistics_equal_those_of_the_pooled_data() -> None:
    torch.manual_seed(0)
    clients = [
        torch.randn(n, 4) * s + m for n, s, m in [(50, 1.0, 0.0), (20, 3.0, 2.0), (5, 0.5, -1)]
    ]
    model = build_model("egemaps", num_classes=3, params={})
    statistics = []
    for data in clients:
        model.adapt("head", [FeatureItem(torch.nn.functional.pad(row, (0, 84)), 1) for row in data])
        statistics.append((statistics_buffers(model.state_dict()), float(len(data))))
    pooled = pool_statistics(statistics)
    everything = torch.cat(clients)
    assert set(pooled) == {"feature_mean", "feature_std"}
    assert torch.allclose(pooled["feature_mean"][:4], everything.mean(0), atol=1e-5)
    # adapt uses the population deviation, so pooling is exact
    assert torch.allclose(pooled["feature_std"][:4], everything.std(0, unbiased=False), atol=1e-4)
