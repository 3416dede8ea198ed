"""Clients of a federated run: one shard of cached features per speaker.

Each speaker of the training part is a client holding only its own utterances, so the
clients are non-IID by construction (each speaker's own label mix and voice). The driver
reads the features once from the feature cache and writes every shard into one file; each
simulation process loads that file once (:func:`load_shards` keeps it in memory), so a round
ships model weights, never audio or features.

Example:
    >>> shards = speaker_shards(utterances, items, targets)  # doctest: +SKIP
    >>> [shard.speaker for shard in shards][:2]  # doctest: +SKIP
    ['03', '08']
    >>> path = save_shards(shards, tmp_path / "clients.pt")  # doctest: +SKIP
    >>> load_shards(path)[0].size == shards[0].size  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from serhpo.data import FeatureItem, Utterance
from serhpo.errors import UserError

#: Shards loaded in this process, by file path and modification time.
_LOADED: dict[tuple[str, int], list[ClientShard]] = {}


@dataclass
class ClientShard:
    """One client's data: a speaker's cached features and class indices.

    Attributes:
        speaker: the speaker id (the client's name).
        items: the speaker's feature items, in split order.
        targets: class indices, int64, one per item.
    """

    speaker: str
    items: list[FeatureItem]
    targets: torch.Tensor

    @property
    def size(self) -> int:
        """Utterances the client holds (FedAvg weights its update by this)."""
        return len(self.items)


def speaker_shards(
    utterances: Sequence[Utterance], items: Sequence[FeatureItem], targets: Sequence[int]
) -> list[ClientShard]:
    """Group utterances by speaker into client shards, speakers in first-seen order.

    Raises:
        UserError: when there are fewer than two speakers (nothing to federate).
    """
    if not (len(utterances) == len(items) == len(targets)):
        raise ValueError("utterances, items and targets must have the same length")
    grouped: dict[str, list[int]] = {}
    for index, utterance in enumerate(utterances):
        grouped.setdefault(utterance.speaker, []).append(index)
    if len(grouped) < 2:
        raise UserError(
            f"federated training needs at least two speakers (clients) in the training part; "
            f"found {len(grouped)}. Use a corpus with more speakers or a speaker split with a "
            f"larger train part (split: in config.yaml)."
        )
    target_tensor = torch.as_tensor(list(targets), dtype=torch.int64)
    return [
        ClientShard(
            speaker=speaker,
            items=[items[i] for i in indices],
            targets=target_tensor[indices].clone(),
        )
        for speaker, indices in grouped.items()
    ]


def save_shards(shards: Sequence[ClientShard], path: Path) -> Path:
    """Write the shards into one file (``torch.load(..., weights_only=True)`` reads it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = [
        {
            "speaker": shard.speaker,
            "values": [item.values for item in shard.items],
            "valid_frames": [int(item.valid_frames) for item in shard.items],
            "targets": shard.targets,
        }
        for shard in shards
    ]
    temporary = path.with_name(path.name + ".part")
    torch.save(payload, temporary)
    temporary.replace(path)
    return path


def load_shards(path: Path) -> list[ClientShard]:
    """The shards of a file written by :func:`save_shards`, loaded once per process."""
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _LOADED:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        _LOADED.clear()  # one run at a time per process: drop the previous run's shards
        _LOADED[key] = [
            ClientShard(
                speaker=entry["speaker"],
                items=[
                    FeatureItem(values=values, valid_frames=frames)
                    for values, frames in zip(entry["values"], entry["valid_frames"], strict=True)
                ],
                targets=entry["targets"],
            )
            for entry in payload
        ]
    return _LOADED[key]


def pool_statistics(
    statistics: Sequence[tuple[dict[str, torch.Tensor], float]],
) -> dict[str, torch.Tensor]:
    """Pool per-client means and standard deviations into the federation's.

    Each client standardises nothing itself: it fits the model's ``*_mean``/``*_std``
    buffers on its own data (:meth:`serhpo.models.base.SERModel.adapt`) and sends them with
    its weight (frames or utterances). The pooled mean is the weighted mean of the means;
    the pooled variance is the weighted mean of ``std**2 + mean**2`` minus the pooled mean
    squared, so no client's features leave the client.

    Args:
        statistics: ``(buffers, weight)`` per client; buffers hold ``<name>_mean`` and
            ``<name>_std`` pairs.

    Returns:
        The pooled buffers, same names.

    Example:
        >>> a = ({"band_mean": torch.tensor([0.0]), "band_std": torch.tensor([1.0])}, 1.0)
        >>> b = ({"band_mean": torch.tensor([2.0]), "band_std": torch.tensor([1.0])}, 1.0)
        >>> pooled = pool_statistics([a, b])
        >>> pooled["band_mean"].item(), round(pooled["band_std"].item(), 4)
        (1.0, 1.4142)
    """
    total = sum(weight for _, weight in statistics)
    if not statistics or total <= 0:
        return {}
    pooled: dict[str, torch.Tensor] = {}
    for name in statistics[0][0]:
        if not name.endswith("_mean"):
            continue
        std_name = name[: -len("_mean")] + "_std"
        mean = sum(buffers[name].double() * weight for buffers, weight in statistics) / total
        second = (
            sum(
                (buffers[std_name].double() ** 2 + buffers[name].double() ** 2) * weight
                for buffers, weight in statistics
            )
            / total
        )
        # A feature missing (NaN) on some client leaves the pooled value undefined: neutral.
        pooled[name] = torch.nan_to_num(mean.float(), nan=0.0)
        std = (second - mean**2).clamp_min(0).sqrt().float()
        pooled[std_name] = torch.nan_to_num(std, nan=1.0).clamp_min(1e-6)
    return pooled


def statistics_buffers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copies of the ``*_mean``/``*_std`` buffer pairs of a state dict (what adapt fits)."""
    names = {name for name in state if name.endswith("_mean")}
    pairs = {n for n in names if n[: -len("_mean")] + "_std" in state}
    return {
        key: state[key].detach().clone()
        for name in sorted(pairs)
        for key in (name, name[: -len("_mean")] + "_std")
    }
