"""The feature cache: every frozen computation runs once per utterance and is shared.

A model's frozen part (:class:`~serhpo.models.base.FrozenFeature`: log-Mel,
eGeMAPS functionals, wav2vec2 encoder or conv outputs) is computed once per
utterance and preprocessing, stored on disk, and read by every epoch, trial and HPO
engine. One entry is one file::

    {root}/{corpus}/{backbone}/{feature.name}-{feature.fingerprint()}/
        {utterance_id}.{variant}.{audio signature}.pt

- ``fingerprint`` covers the feature's parameters and, for a pretrained network, its
  checksum: change them and the old entries are never read again.
- ``variant`` is what ``maxlen``/``padding`` did to this utterance
  (:meth:`serhpo.data.Preprocessing.variant`): ``full``, ``first48000``,
  ``pad48000``; an utterance shorter than ``maxlen`` without padding has one ``full``
  entry for every ``maxlen``.
- the audio signature hashes the prepared file's size and modification time: a
  re-prepared file gets new entries.

Each entry stores, beside its values, what it was computed from and a digest of what it
holds: the utterance id, the variant, the audio signature, the feature folder, the shape,
the dtype and a SHA-256 digest of the values. A read checks them against the entry it was
asked for (cheap: no audio is read or hashed) and also refuses non-finite values and a
shape that disagrees with the feature's other entries; an entry that fails a check (an
entry copied from another utterance, altered or zeroed values, a wrong shape, NaN, or an
entry written before these checks) is recomputed, with a warning that names the reason.
A feature whose computation itself gives non-finite values raises
:class:`NonFiniteFeatureError`, which names the utterance and the feature.

Writers save to a temporary file in the same folder and ``os.replace`` it, so that
several processes (HPO jobs, Snakemake rules) may read and write the cache at once
and no reader ever sees half a file; two writers of one entry both leave a valid one.
Entries are saved with ``torch.save`` and read with ``torch.load(weights_only=True)``.

Example:
    >>> cache = FeatureCache(Path("results/features"), backbone="logmel")  # doctest: +SKIP
    >>> items = cache.get_many(model.frozen_feature("train"), data.parts["train"],  # doctest: +SKIP
    ...                        Preprocessing(maxlen=48000, padding=True))
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import weakref
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from serhpo.config import (
    add_config_arguments,
    cache_plan,
    read_stage_config,
    settings,
)
from serhpo.data import FeatureItem, Preprocessing, Utterance, load_split, read_waveform
from serhpo.errors import UserError
from serhpo.files import honour_umask
from serhpo.models.base import FrozenFeature

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

#: The entry layout: values, valid_frames, and what :func:`check_entry` compares.
ENTRY_FORMAT = 2
#: Warnings logged one by one per ``get_many`` call before a summary line takes over.
_WARNINGS_SHOWN = 5


class NonFiniteFeatureError(ValueError):
    """A frozen feature computed from an utterance's audio holds NaN or infinite values.

    The trainer records the trial as failed with this message (it names the utterance,
    its file and the feature), not as a diverged training run.
    """


@dataclass
class CacheStats:
    """How a cache answered: ``computed`` entries (the frozen computation ran),
    ``loaded`` from disk, ``memory`` hits (already loaded in this process), ``rejected``
    entries on disk that failed a check on read and were computed again."""

    computed: int = 0
    loaded: int = 0
    memory: int = 0
    #: entries on disk that failed a check on read (and were computed again)
    rejected: int = 0


class FeatureCache:
    """Frozen features on disk under ``root/{corpus}/{backbone}/``, with an in-memory LRU.

    Args:
        root: the cache root (``results/features``).
        backbone: the backbone or model family name, a path component (``logmel``,
            ``egemaps``, ``wav2vec2``).
        memory_bytes: how many bytes of loaded features to keep in memory in this
            process (least recently used dropped first); 0 keeps none.
        compute_batch_size: utterances handed to ``FrozenFeature.compute_batch`` at once.
        progress: show a tqdm bar while computing missing entries.

    Example:
        >>> cache = FeatureCache(Path("results/features"), backbone="logmel")  # doctest: +SKIP
        >>> item = cache.get(feature, utterance,
        ...                  Preprocessing(maxlen=32000, padding=False))  # doctest: +SKIP
        >>> cache.stats.computed  # doctest: +SKIP
        1
    """

    def __init__(
        self,
        root: Path,
        *,
        backbone: str,
        memory_bytes: int = 4 * 1024**3,
        compute_batch_size: int = 8,
        progress: bool = False,
    ) -> None:
        self.root = Path(root)
        self.backbone = _safe(backbone)
        self.memory_bytes = memory_bytes
        self.compute_batch_size = max(1, compute_batch_size)
        self.progress = progress
        self.stats = CacheStats()
        self._memory: OrderedDict[str, FeatureItem] = OrderedDict()
        self._memory_used = 0
        # per feature object, not per id(): a freed feature's id may be reused by another
        self._fingerprints: weakref.WeakKeyDictionary[FrozenFeature, str] = (
            weakref.WeakKeyDictionary()
        )

    def feature_dir(self, feature: FrozenFeature, corpus: str) -> Path:
        """The folder holding ``feature``'s entries for ``corpus``."""
        fingerprint = self._fingerprints.get(feature)
        if fingerprint is None:
            fingerprint = self._fingerprints[feature] = feature.fingerprint()
        return self.root / _safe(corpus) / self.backbone / f"{_safe(feature.name)}-{fingerprint}"

    def entry_path(
        self, feature: FrozenFeature, utterance: Utterance, preprocessing: Preprocessing
    ) -> Path:
        """Where the entry of one utterance lives (whether or not it exists yet)."""
        return self._entry(feature, utterance, preprocessing)[0]

    def _entry(
        self, feature: FrozenFeature, utterance: Utterance, preprocessing: Preprocessing
    ) -> tuple[Path, dict[str, str]]:
        """The entry's path and its identity (what :func:`check_entry` compares)."""
        variant = preprocessing.variant(utterance.num_samples)
        signature = audio_signature(utterance.path)
        folder = self.feature_dir(feature, utterance.corpus)
        identity = {
            "utterance_id": str(utterance.utterance_id),
            "variant": variant,
            "audio_signature": signature,
            "feature": folder.name,
        }
        return folder / f"{_safe(utterance.utterance_id)}.{variant}.{signature}.pt", identity

    def get(
        self, feature: FrozenFeature, utterance: Utterance, preprocessing: Preprocessing
    ) -> FeatureItem:
        """One utterance's feature: from memory, from disk, or computed and stored."""
        return self.get_many(feature, [utterance], preprocessing)[0]

    def get_many(
        self,
        feature: FrozenFeature,
        utterances: Sequence[Utterance],
        preprocessing: Preprocessing,
    ) -> list[FeatureItem]:
        """The features of ``utterances`` in order, computing only the missing entries.

        Example:
            >>> items = cache.get_many(feature, data.parts["valid"],
            ...                        Preprocessing(maxlen=None))  # doctest: +SKIP
            >>> len(items) == len(data.parts["valid"])  # doctest: +SKIP
            True
        """
        entries = [self._entry(feature, u, preprocessing) for u in utterances]
        paths = [path for path, _ in entries]
        found: dict[int, FeatureItem] = {}
        missing: list[int] = []
        rejected: list[tuple[Path, str]] = []
        loaded: dict[int, FeatureItem] = {}
        for index, (path, identity) in enumerate(entries):
            item = self._from_memory(path)
            if item is None:
                item, problem = self._from_disk(path, identity)
                if problem:
                    rejected.append((path, problem))
                elif item is not None:
                    loaded[index] = item
            if item is None:
                missing.append(index)
            else:
                found[index] = item
        for index, problem in self._odd_shapes(feature, found, loaded).items():
            rejected.append((paths[index], problem))
            self._forget(paths[index])
            self.stats.loaded -= 1
            del found[index]
            missing.append(index)
        if rejected:
            self._warn(rejected)
        if missing:
            self._compute(feature, utterances, entries, preprocessing, sorted(missing), found)
        return [found[index] for index in range(len(utterances))]

    def _odd_shapes(
        self,
        feature: FrozenFeature,
        found: Mapping[int, FeatureItem],
        loaded: Mapping[int, FeatureItem],
    ) -> dict[int, str]:
        """Loaded entries whose shape (beyond the frame axis) disagrees with the others'.

        An entry's own record of its shape is checked on read; this catches an entry that
        is consistent in itself but not with the feature (e.g. written for another one).
        """
        if not loaded or len(found) < 3:
            return {}

        def key(item: FeatureItem) -> tuple[str, tuple[int, ...]]:
            shape = tuple(item.values.shape)
            return str(item.values.dtype), shape[1:] if feature.sequence else shape

        counts = Counter(key(item) for item in found.values())
        (usual, count), *rest = counts.most_common()
        if rest and rest[0][1] == count:  # no clear majority: nothing to judge by
            return {}
        dtype, dims = usual
        expected = ", ".join(["frames", *map(str, dims)] if feature.sequence else map(str, dims))
        return {
            index: (
                f"has shape {tuple(item.values.shape)} {item.values.dtype}, while the "
                f"feature's other entries have ({expected}) {dtype}"
            )
            for index, item in loaded.items()
            if key(item) != usual
        }

    def _warn(self, rejected: Sequence[tuple[Path, str]]) -> None:
        self.stats.rejected += len(rejected)
        for path, problem in rejected[:_WARNINGS_SHOWN]:
            log.warning("feature-cache entry %s %s; recomputing it", path, problem)
        if len(rejected) > _WARNINGS_SHOWN:
            log.warning(
                "%d more feature-cache entries in %s failed a check; recomputing them "
                "(first reason: %s)",
                len(rejected) - _WARNINGS_SHOWN,
                rejected[0][0].parent,
                rejected[_WARNINGS_SHOWN][1],
            )

    def _from_memory(self, path: Path) -> FeatureItem | None:
        item = self._memory.get(str(path))
        if item is not None:
            self._memory.move_to_end(str(path))
            self.stats.memory += 1
        return item

    def _from_disk(
        self, path: Path, identity: Mapping[str, str]
    ) -> tuple[FeatureItem | None, str | None]:
        """The entry if it exists and passes :func:`check_entry`; else why not (or None)."""
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            return None, None
        except Exception as error:  # a corrupt entry (e.g. a full disk): recompute it
            return None, f"is unreadable ({type(error).__name__}: {error})"
        problem = check_entry(stored, identity=identity)
        if problem:
            return None, problem
        item = FeatureItem(values=stored["values"], valid_frames=int(stored["valid_frames"]))
        self.stats.loaded += 1
        self._remember(path, item)
        return item, None

    def _compute(
        self,
        feature: FrozenFeature,
        utterances: Sequence[Utterance],
        entries: Sequence[tuple[Path, dict[str, str]]],
        preprocessing: Preprocessing,
        missing: list[int],
        found: dict[int, FeatureItem],
    ) -> None:
        bar = tqdm(
            total=len(missing),
            desc=f"{feature.name} {preprocessing}",
            disable=not self.progress,
            unit="utt",
        )
        for start in range(0, len(missing), self.compute_batch_size):
            chunk = missing[start : start + self.compute_batch_size]
            waveforms, valid = [], []
            for index in chunk:
                waveform, valid_samples = preprocessing.apply(read_waveform(utterances[index].path))
                waveforms.append(waveform)
                valid.append(valid_samples)
            with torch.inference_mode():
                items = feature.compute_batch(waveforms, valid_samples=valid)
            for index, item in zip(chunk, items, strict=True):
                item = FeatureItem(
                    values=item.values.detach().cpu().clone(), valid_frames=int(item.valid_frames)
                )
                bad = (
                    int((~torch.isfinite(item.values)).sum())
                    if item.values.is_floating_point()
                    else 0
                )
                if bad:
                    bar.close()
                    utterance = utterances[index]
                    raise NonFiniteFeatureError(
                        f"the {feature.name} feature of utterance {utterance.utterance_id!r} "
                        f"({utterance.path}, {preprocessing}) has {bad} non-finite values of "
                        f"{item.values.numel()}, computed before any training. Check the file "
                        "(serhpo prepare rejects unreadable and silent audio) or leave the "
                        "utterance out of the split; if every utterance fails, check the "
                        "backbone's weights"
                    )
                path, identity = entries[index]
                write_entry(path, item, identity=identity)
                self.stats.computed += 1
                self._remember(path, item)
                found[index] = item
            bar.update(len(chunk))
        bar.close()

    def _forget(self, path: Path) -> None:
        item = self._memory.pop(str(path), None)
        if item is not None:
            self._memory_used -= item.values.element_size() * item.values.nelement()

    def _remember(self, path: Path, item: FeatureItem) -> None:
        size = item.values.element_size() * item.values.nelement()
        if size > self.memory_bytes:
            return
        key = str(path)
        if key in self._memory:
            return
        self._memory[key] = item
        self._memory_used += size
        while self._memory_used > self.memory_bytes:
            _, dropped = self._memory.popitem(last=False)
            self._memory_used -= dropped.values.element_size() * dropped.values.nelement()


def values_digest(values: torch.Tensor, valid_frames: int) -> str:
    """A SHA-256 digest of a tensor's bytes, shape, dtype and valid frames (no audio read).

    Example:
        >>> values_digest(torch.zeros(3), 1) == values_digest(torch.zeros(3), 2)
        False
    """
    values = values.detach().contiguous()
    digest = hashlib.sha256()
    digest.update(f"{tuple(values.shape)}|{values.dtype}|{int(valid_frames)}|".encode())
    if values.numel():
        digest.update(values.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()[:32]


def _all_finite(values: torch.Tensor) -> bool:
    """Whether every value is finite; a float64 sum finds NaN and inf without a mask."""
    if not values.is_floating_point():
        return True
    if math.isfinite(float(values.sum(dtype=torch.float64))):
        return True
    return bool(torch.isfinite(values).all())  # a float64 tensor's sum may overflow


def check_entry(stored: object, *, identity: Mapping[str, str]) -> str | None:
    """Why a stored entry cannot stand for the entry with ``identity``, or None when it can.

    Checks the stored identity (utterance, variant, audio signature, feature), the stored
    shape and dtype against the values, the digest of the values and valid frames, and that
    the values are finite.

    Example:
        >>> stored = entry_payload(FeatureItem(torch.ones(4, 2), 3), identity={"utterance_id": "a"})
        >>> check_entry(stored, identity={"utterance_id": "b"})
        "was computed from utterance_id 'a', not 'b'"
    """
    if not isinstance(stored, dict) or not isinstance(stored.get("values"), torch.Tensor):
        return "holds no values tensor"
    if stored.get("format") != ENTRY_FORMAT or not isinstance(stored.get("identity"), dict):
        return "records no source (written before entries were checked on read)"
    for key, expected in identity.items():
        found = stored["identity"].get(key)
        if found != expected:
            return f"was computed from {key} {found!r}, not {expected!r}"
    values = stored["values"]
    shape, dtype = list(values.shape), str(values.dtype)
    if stored.get("shape") != shape or stored.get("dtype") != dtype:
        return (
            f"holds values of shape {shape} {dtype}, but was written with "
            f"{stored.get('shape')} {stored.get('dtype')}"
        )
    try:
        valid_frames = int(stored["valid_frames"])
    except (KeyError, TypeError, ValueError):
        return "has no valid_frames"
    if stored.get("digest") != values_digest(values, valid_frames):
        return "holds values that changed after they were written (digest mismatch)"
    if not _all_finite(values):
        return "holds non-finite values (NaN or inf)"
    return None


def entry_payload(item: FeatureItem, *, identity: Mapping[str, str] | None = None) -> dict:
    """What :func:`write_entry` saves: the values and what :func:`check_entry` compares."""
    values = item.values.contiguous()
    return {
        "values": values,
        "valid_frames": int(item.valid_frames),
        "format": ENTRY_FORMAT,
        "identity": dict(identity or {}),
        "shape": list(values.shape),
        "dtype": str(values.dtype),
        "digest": values_digest(values, item.valid_frames),
    }


def write_entry(
    path: Path, item: FeatureItem, *, identity: Mapping[str, str] | None = None
) -> None:
    """Save one entry atomically: a temporary file in the same folder, then ``os.replace``.

    Args:
        path: the entry's file.
        item: the feature.
        identity: what it was computed from (:meth:`FeatureCache.get_many` passes the
            utterance id, variant, audio signature and feature folder); a read for another
            identity recomputes the entry.

    Example:
        >>> write_entry(Path("/tmp/x/a.full.0.pt"), FeatureItem(torch.zeros(3), 1))
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(entry_payload(item, identity=identity), stream)
        honour_umask(Path(temporary))  # mkstemp's 0600 would hide the cache from the group
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def audio_signature(path: Path) -> str:
    """A short hash of a file's size and modification time (changes when it is rewritten).

    Example:
        >>> len(audio_signature(Path("pyproject.toml")))
        10
    """
    status = Path(path).stat()
    text = f"{status.st_size}:{status.st_mtime_ns}"
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _safe(name: str) -> str:
    """A folder/file-safe version of ``name``; a hash suffix keeps altered names unique."""
    cleaned = _UNSAFE.sub("_", name)
    if cleaned != name:
        cleaned += "-" + hashlib.sha256(name.encode()).hexdigest()[:6]
    return cleaned


def cache_features(
    split_csv: Path,
    *,
    cache_dir: Path,
    backbone: str,
    model_params: dict | None = None,
    model_choices: dict[str, Sequence] | None = None,
    backbone_dir: Path | None = None,
    maxlens: Sequence[int | None] = (None,),
    padding: bool = True,
    parts: Sequence[str] = ("train", "valid"),
    stages: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    root: Path | None = None,
) -> dict:
    """Precompute a model's frozen features for the utterances of a split.

    Args:
        split_csv: the split CSV.
        cache_dir: the cache root (``results/features``).
        backbone: the model family (config ``backbone.name``).
        model_params: the family's parameters (they may change the frozen part).
        model_choices: family parameters that the search space varies and that change the
            frozen part, with their values (e.g. whisper's ``{"window": ["30s",
            "utterance"]}``): every combination is cached.
        backbone_dir: the pretrained model's folder, for families that have one.
        maxlens: every ``maxlen`` to precompute (the search space's choices).
        padding: zero-pad to ``maxlen``.
        parts: the split parts to cover.
        stages: the model's stages to cover (default: all of them).
        labels: the class order (config ``target_labels``).
        root: the project root the CSV's paths are relative to (default: cwd).

    Returns:
        A summary: per stage and maxlen, entries computed and loaded.

    Raises:
        UserError: when an utterance's audio gives non-finite features (it names them).

    Example:
        >>> cache_features(Path("results/splits/emodb.csv"), cache_dir=Path("results/features"),
        ...                backbone="logmel", maxlens=[32000, 48000])["computed"]  # doctest: +SKIP
        856
    """
    import itertools

    from serhpo.models import build_model  # the models import torch/torchaudio/opensmile

    data = load_split(split_csv, parts=parts, labels=labels, root=root)
    choices = dict(model_choices or {})
    variants = [
        {**(model_params or {}), **dict(zip(choices, values, strict=True))}
        for values in itertools.product(*choices.values())
    ]
    cache = FeatureCache(cache_dir, backbone=backbone, memory_bytes=0, progress=True)
    utterances = [u for part in parts for u in data.parts[part]]
    summary: dict = {"backbone": backbone, "entries": []}
    done: set[tuple[str, str, int | None]] = set()
    for params in variants:
        model = build_model(
            backbone, num_classes=len(data.labels), params=params, backbone_dir=backbone_dir
        )
        for stage in stages or model.stages:
            if stage not in model.stages:
                raise UserError(
                    f"backbone {backbone!r} has stages {list(model.stages)}; got {stage!r}. "
                    "Leave --stages out to cover them all."
                )
            feature = model.frozen_feature(stage)
            for maxlen in maxlens:
                key = (feature.name, feature.fingerprint(), maxlen)
                if key in done:
                    continue
                done.add(key)
                before = (cache.stats.computed, cache.stats.loaded)
                try:
                    cache.get_many(
                        feature, utterances, Preprocessing(maxlen=maxlen, padding=padding)
                    )
                except NonFiniteFeatureError as error:  # before any trial meets it
                    raise UserError(f"serhpo cache-features: {error}.") from None
                summary["entries"].append(
                    {
                        "stage": stage,
                        "feature": feature.name,
                        "fingerprint": feature.fingerprint(),
                        "model_params": {key: params[key] for key in choices},
                        "maxlen": maxlen,
                        "padding": padding,
                        "computed": cache.stats.computed - before[0],
                        "loaded": cache.stats.loaded - before[1],
                    }
                )
    summary["computed"] = cache.stats.computed
    summary["loaded"] = cache.stats.loaded
    summary["utterances"] = len(utterances)
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo cache-features``.

    What to compute comes from config (``--config``/``--config-json``, the rule's JSON of
    :func:`serhpo.config.cache_config`), planned by :func:`serhpo.config.cache_plan` from the
    same settings the studies read.
    """
    parser.add_argument("split_csv", type=Path, help="the split CSV (results/splits/{corpus}.csv)")
    add_config_arguments(parser)
    parser.add_argument(
        "--cache-dir", type=Path, help="cache root; overrides config features.cache_dir"
    )
    parser.add_argument("--backbone-dir", type=Path, help="the pretrained model's folder")
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["train", "valid"],
        choices=["train", "valid", "test"],
        help="parts of the split to cache",
    )
    parser.add_argument("--stages", nargs="+", help="stages to cover (default: all)")
    parser.add_argument(
        "--summary", type=Path, help="write the summary JSON here (a Snakemake output)"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo cache-features``: precompute, print the summary, optionally save it.

    Example:
        $ serhpo cache-features results/splits/emodb.csv --config config.yaml
    """
    typed = settings(read_stage_config(args.config, args.config_json))
    plan = cache_plan(typed)
    summary: dict = {"backbone": typed.backbone, "entries": [], "computed": 0, "loaded": 0}
    for padding in plan.paddings:
        part = cache_features(
            args.split_csv,
            cache_dir=args.cache_dir or typed.paths.cache_dir,
            backbone=typed.backbone,
            model_params=typed.model,
            model_choices=plan.model_choices,
            backbone_dir=args.backbone_dir or typed.paths.backbone_dir,
            maxlens=plan.maxlens,
            padding=padding,
            parts=args.parts,
            stages=args.stages,
            labels=typed.target_labels,
        )
        summary["entries"] += part["entries"]
        summary["computed"] += part["computed"]
        summary["loaded"] += part["loaded"]
        summary["utterances"] = part["utterances"]
    text = json.dumps(summary, indent=2)
    print(text)
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(text + "\n")
    return 0
