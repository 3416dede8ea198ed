"""The feature cache: computes once, shares entries, invalidates, survives concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch

from serhpo import cli
from serhpo.data import FeatureItem, Preprocessing, Utterance, load_split
from serhpo.features import FeatureCache, cache_features, write_entry
from serhpo.models.base import FrozenFeature, WaveformFeature, fingerprint_of

RATE = 16000


class CountingFeature(FrozenFeature):
    """Frame energies every 10 ms; counts how often it really runs."""

    name: ClassVar[str] = "counting"
    sequence: ClassVar[bool] = True

    def __init__(self, *, version: int = 1) -> None:
        self.version = version
        self.calls = 0

    def fingerprint(self) -> str:
        return fingerprint_of(kind="counting", version=self.version)

    def compute(self, waveform: torch.Tensor, *, valid_samples: int) -> FeatureItem:
        self.calls += 1
        frames = waveform[: len(waveform) // 160 * 160].reshape(-1, 160)
        return FeatureItem(
            values=frames.pow(2).mean(dim=1, keepdim=True), valid_frames=1 + valid_samples // 160
        )


def _write_wav(path: Path, seconds: float, *, frequency: float = 220.0) -> None:
    time = np.arange(int(seconds * RATE)) / RATE
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * frequency * time), RATE, subtype="PCM_16")


@pytest.fixture
def utterances(tmp_path: Path) -> list[Utterance]:
    """Three short WAVs: 0.5 s, 1.0 s and 1.5 s."""
    result = []
    for index, seconds in enumerate([0.5, 1.0, 1.5]):
        path = tmp_path / "audio" / f"u{index}.wav"
        path.parent.mkdir(exist_ok=True)
        _write_wav(path, seconds, frequency=200.0 + 50 * index)
        result.append(
            Utterance(f"u{index}", "demo", path, "anger", "s1", num_samples=int(seconds * RATE))
        )
    return result


def test_entries_are_computed_once_then_read_from_disk(tmp_path, utterances):
    feature = CountingFeature()
    prep = Preprocessing(maxlen=16000, padding=True)
    first = FeatureCache(tmp_path / "cache", backbone="demo")
    items = first.get_many(feature, utterances, prep)
    assert feature.calls == 3 and first.stats.computed == 3
    first.get_many(feature, utterances, prep)  # same process: memory
    assert feature.calls == 3 and first.stats.memory == 3

    second = FeatureCache(tmp_path / "cache", backbone="demo")  # another trial / process
    again = second.get_many(feature, utterances, prep)
    assert feature.calls == 3 and second.stats.loaded == 3
    for item, other in zip(items, again, strict=True):
        assert torch.equal(item.values, other.values) and item.valid_frames == other.valid_frames
    # padded to maxlen: every entry has 100 frames, the valid ones counted
    assert [item.values.shape[0] for item in items] == [100, 100, 100]
    assert [item.valid_frames for item in items] == [51, 101, 101]


def test_layout_is_corpus_backbone_feature(tmp_path, utterances):
    feature = CountingFeature()
    cache = FeatureCache(tmp_path / "cache", backbone="demo")
    path = cache.entry_path(feature, utterances[0], Preprocessing(maxlen=None))
    relative = path.relative_to(tmp_path / "cache").parts
    assert relative[:3] == ("demo", "demo", f"counting-{feature.fingerprint()}")
    assert relative[3].startswith("u0.full.")


def test_short_utterances_without_padding_share_one_entry_across_maxlens(tmp_path, utterances):
    feature = CountingFeature()
    cache = FeatureCache(tmp_path / "cache", backbone="demo", memory_bytes=0)
    short = utterances[0]  # 8000 samples
    for maxlen in (16000, 32000, 48000, None):
        cache.get(feature, short, Preprocessing(maxlen=maxlen, padding=False))
    assert feature.calls == 1
    cache.get(feature, short, Preprocessing(maxlen=16000, padding=True))  # padded: another entry
    cache.get(feature, utterances[2], Preprocessing(maxlen=16000, padding=False))  # truncated
    assert feature.calls == 3


def test_changed_audio_or_feature_parameters_invalidate(tmp_path, utterances):
    prep = Preprocessing(maxlen=None)
    feature = CountingFeature()
    FeatureCache(tmp_path / "cache", backbone="demo").get_many(feature, utterances, prep)
    assert feature.calls == 3

    _write_wav(utterances[1].path, 1.0, frequency=440.0)  # re-prepared file
    os.utime(utterances[1].path, ns=(1, 1))  # a different mtime even on coarse clocks
    cache = FeatureCache(tmp_path / "cache", backbone="demo")
    cache.get_many(feature, utterances, prep)
    assert feature.calls == 4 and cache.stats.computed == 1 and cache.stats.loaded == 2

    changed = CountingFeature(version=2)  # e.g. other n_mels, another backbone checksum
    FeatureCache(tmp_path / "cache", backbone="demo").get_many(changed, utterances, prep)
    assert changed.calls == 3


def test_a_corrupt_entry_is_recomputed(tmp_path, utterances):
    feature = CountingFeature()
    cache = FeatureCache(tmp_path / "cache", backbone="demo", memory_bytes=0)
    prep = Preprocessing(maxlen=None)
    cache.get(feature, utterances[0], prep)
    cache.entry_path(feature, utterances[0], prep).write_bytes(b"half a fi")
    item = cache.get(feature, utterances[0], prep)
    assert feature.calls == 2 and item.values.shape == (50, 1)


def _hammer(path: str, seed: int, reads: Any) -> None:
    """Write the entry over and over until the reader has read it a few times (at most 2000)."""
    generator = torch.Generator().manual_seed(seed)
    for written in range(2000):
        write_entry(Path(path), FeatureItem(torch.randn(2000, 8, generator=generator), 2000))
        if written >= 30 and reads.is_set():
            return


def test_concurrent_writers_of_one_entry_leave_a_valid_file(tmp_path):
    path = tmp_path / "cache" / "entry.pt"
    context = multiprocessing.get_context("fork")
    reads = context.Event()  # the writers keep writing until the reader has read 20 times
    workers = [context.Process(target=_hammer, args=(str(path), seed, reads)) for seed in (1, 2, 3)]
    for worker in workers:
        worker.start()
    stored = 0
    while any(worker.is_alive() for worker in workers):  # read while they write
        if path.exists():
            loaded = torch.load(path, weights_only=True)
            assert loaded["values"].shape == (2000, 8)
            stored += 1
            if stored >= 20:
                reads.set()
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    assert stored >= 20  # the reads above ran while the writers were writing
    assert torch.load(path, weights_only=True)["valid_frames"] == 2000
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_entries_are_written_with_the_umask_like_every_other_output(tmp_path):
    previous = os.umask(0o022)  # a shared project folder: the group and others may read
    try:
        write_entry(tmp_path / "cache" / "entry.pt", FeatureItem(torch.zeros(4, 2), 4))
    finally:
        os.umask(previous)
    assert (tmp_path / "cache" / "entry.pt").stat().st_mode & 0o777 == 0o644


def test_waveform_feature_is_the_preprocessed_signal(tmp_path, utterances):
    cache = FeatureCache(tmp_path / "cache", backbone="wav2vec2")
    item = cache.get(WaveformFeature(), utterances[0], Preprocessing(maxlen=12000, padding=True))
    assert item.values.shape == (12000,) and item.valid_frames == 8000
    assert torch.all(item.values[8000:] == 0)


def test_cache_features_stage_precomputes_every_maxlen(tmp_path, utterances, monkeypatch):
    split = pd.DataFrame(
        {
            "utterance_id": [u.utterance_id for u in utterances],
            "path": [str(u.path) for u in utterances],
            "corpus": "demo",
            "speaker": "s1",
            "label": ["anger", "sadness", "anger"],
            "num_samples": [u.num_samples for u in utterances],
            "part": ["train", "train", "valid"],
        }
    )
    split_csv = tmp_path / "split.csv"
    split.to_csv(split_csv, index=False)
    summary_path = tmp_path / "summary.json"
    # What the rule passes (serhpo.config.cache_config): the maxlens the trials will read.
    settings = {
        "target_labels": ["anger", "sadness"],
        "backbone": {"name": "logmel"},
        "model": {"n_mels": 32},
        "training": {"padding": False},
        "search_space": {"maxlen": {"type": "choice", "choices": [8000, 16000]}},
    }
    status = cli.main(
        [
            "cache-features", str(split_csv), "--cache-dir", str(tmp_path / "features"),
            "--config-json", json.dumps(settings), "--summary", str(summary_path),
        ]
    )  # fmt: skip
    assert status == 0
    summary = json.loads(summary_path.read_text())
    # 8000: all three truncated or full (3 entries); 16000: u0 is "full" again (shared), 2 new
    assert [entry["computed"] for entry in summary["entries"]] == [3, 2]
    again = cache_features(
        split_csv, cache_dir=tmp_path / "features", backbone="logmel",
        model_params={"n_mels": 32}, maxlens=[8000, 16000], padding=False,
    )  # fmt: skip
    assert again["computed"] == 0 and again["loaded"] == 6
    assert load_split(split_csv).labels == ("anger", "sadness")


def test_cache_features_stage_computes_nothing_no_trial_reads(tmp_path, utterances):
    """A numeric maxlen range: each trial asks for its own value, so nothing is precomputed
    (the stage once computed whole-utterance entries that no trial read)."""
    split = pd.DataFrame(
        {
            "utterance_id": [u.utterance_id for u in utterances],
            "path": [str(u.path) for u in utterances],
            "corpus": "demo",
            "speaker": "s1",
            "label": ["anger", "sadness", "anger"],
            "part": ["train", "train", "valid"],
        }
    )
    split.to_csv(tmp_path / "split.csv", index=False)
    settings = {
        "target_labels": ["anger", "sadness"],
        "backbone": {"name": "logmel"},
        "search_space": {"maxlen": {"type": "int", "low": 8000, "high": 16000}},
    }
    summary_path = tmp_path / "summary.json"
    arguments = ["cache-features", str(tmp_path / "split.csv"), "--config-json"]
    arguments += [json.dumps(settings), "--cache-dir", str(tmp_path / "features")]
    assert cli.main([*arguments, "--summary", str(summary_path)]) == 0
    summary = json.loads(summary_path.read_text())
    assert summary["entries"] == [] and summary["computed"] == 0
    assert not list((tmp_path / "features").rglob("*.pt"))


def test_each_feature_object_gets_its_own_fingerprint(tmp_path, utterances):
    cache = FeatureCache(tmp_path / "cache", backbone="demo")
    for version in range(1, 8):  # each feature is freed in turn; its id may be reused
        feature = CountingFeature(version=version)
        path = cache.entry_path(feature, utterances[0], Preprocessing(maxlen=None))
        assert path.parent.name == f"counting-{feature.fingerprint()}"


# ---- issue 15: entries are checked on read ----------------------------------------------------


def _filled(tmp_path: Path, utterances: list[Utterance]) -> tuple[CountingFeature, list]:
    """A cache holding the three utterances' entries, and their values as computed."""
    feature = CountingFeature()
    items = FeatureCache(tmp_path / "cache", backbone="demo").get_many(
        feature, utterances, Preprocessing(maxlen=None)
    )
    return feature, items


def _reread(tmp_path, feature, utterances, caplog) -> tuple[FeatureCache, list]:
    cache = FeatureCache(tmp_path / "cache", backbone="demo")  # a new process: nothing in memory
    with caplog.at_level("WARNING", logger="serhpo.features"):
        items = cache.get_many(feature, utterances, Preprocessing(maxlen=None))
    return cache, items


def _path(tmp_path, feature, utterance) -> Path:
    cache = FeatureCache(tmp_path / "cache", backbone="demo")
    return cache.entry_path(feature, utterance, Preprocessing(maxlen=None))


def _assert_recomputed(cache, items, expected, caplog, reason: str) -> None:
    assert cache.stats.rejected == 1 and cache.stats.computed == 1 and cache.stats.loaded == 2
    for item, original in zip(items, expected, strict=True):
        assert torch.equal(item.values, original.values)
        assert item.valid_frames == original.valid_frames
    assert reason in caplog.text and "recomputing it" in caplog.text


def test_an_entry_copied_from_another_utterance_is_recomputed(tmp_path, utterances, caplog):
    feature, expected = _filled(tmp_path, utterances)
    source, target = (_path(tmp_path, feature, u) for u in utterances[1:3])
    target.write_bytes(source.read_bytes())  # same shape family, another utterance's values
    cache, items = _reread(tmp_path, feature, utterances, caplog)
    _assert_recomputed(cache, items, expected, caplog, "computed from utterance_id 'u1', not 'u2'")
    # the recomputed entry is on disk again: a later read loads it
    _, again = _reread(tmp_path, feature, utterances, caplog.clear() or caplog)
    assert torch.equal(again[2].values, expected[2].values) and "recomputing" not in caplog.text


def test_zeroed_values_are_recomputed(tmp_path, utterances, caplog):
    feature, expected = _filled(tmp_path, utterances)
    path = _path(tmp_path, feature, utterances[0])
    stored = torch.load(path, weights_only=True)
    stored["values"].zero_()  # everything else as written
    torch.save(stored, path)
    cache, items = _reread(tmp_path, feature, utterances, caplog)
    _assert_recomputed(cache, items, expected, caplog, "digest mismatch")


def test_an_entry_of_the_wrong_shape_is_recomputed(tmp_path, utterances, caplog):
    feature, expected = _filled(tmp_path, utterances)
    path = _path(tmp_path, feature, utterances[1])
    stored = torch.load(path, weights_only=True)
    stored["values"] = stored["values"][:7]  # cut to 7 frames; the record says 100
    torch.save(stored, path)
    cache, items = _reread(tmp_path, feature, utterances, caplog)
    _assert_recomputed(cache, items, expected, caplog, "holds values of shape [7, 1]")


def test_a_consistent_entry_unlike_the_features_others_is_recomputed(tmp_path, utterances, caplog):
    # Written with its own correct record and digest, but 3 values per frame, not 1.
    feature, expected = _filled(tmp_path, utterances)
    path = _path(tmp_path, feature, utterances[1])
    identity = torch.load(path, weights_only=True)["identity"]
    write_entry(path, FeatureItem(torch.rand(100, 3), 100), identity=identity)
    cache, items = _reread(tmp_path, feature, utterances, caplog)
    _assert_recomputed(
        cache, items, expected, caplog, "other entries have (frames, 1) torch.float32"
    )


@pytest.mark.parametrize("kind", ["nan", "old-format"])
def test_nan_and_unrecorded_entries_are_recomputed(tmp_path, utterances, caplog, kind):
    feature, expected = _filled(tmp_path, utterances)
    path = _path(tmp_path, feature, utterances[0])
    stored = torch.load(path, weights_only=True)
    values = torch.full_like(stored["values"], float("nan"))
    if kind == "nan":  # written as a valid entry, record and digest included
        write_entry(path, FeatureItem(values, stored["valid_frames"]), identity=stored["identity"])
    else:  # the layout before entries recorded their source
        torch.save({"values": stored["values"], "valid_frames": stored["valid_frames"]}, path)
    cache, items = _reread(tmp_path, feature, utterances, caplog)
    reason = "non-finite values" if kind == "nan" else "records no source"
    _assert_recomputed(cache, items, expected, caplog, reason)


class NaNFeature(CountingFeature):
    """Non-finite for utterance u1's audio (1.0 s, 16000 samples), as a broken front end."""

    def compute(self, waveform: torch.Tensor, *, valid_samples: int) -> FeatureItem:
        item = super().compute(waveform, valid_samples=valid_samples)
        if valid_samples == 16000:
            item.values[3] = float("inf")
        return item


def test_audio_that_gives_non_finite_features_names_the_utterance(tmp_path, utterances):
    from serhpo.features import NonFiniteFeatureError

    cache = FeatureCache(tmp_path / "cache", backbone="demo")
    with pytest.raises(
        NonFiniteFeatureError, match=r"counting feature of utterance 'u1' .*u1\.wav"
    ):
        cache.get_many(NaNFeature(), utterances, Preprocessing(maxlen=None))
    assert not _path(tmp_path, NaNFeature(), utterances[1]).exists()  # nothing stored


def test_the_cache_features_stage_names_audio_with_non_finite_features(
    tmp_path, utterances, monkeypatch, capsys
):
    from serhpo import features

    split = pd.DataFrame(
        {
            "utterance_id": [u.utterance_id for u in utterances],
            "path": [str(u.path) for u in utterances],
            "corpus": "demo", "speaker": "s1", "label": "anger",
            "num_samples": [u.num_samples for u in utterances],
            "part": ["train", "train", "valid"],
        }
    )  # fmt: skip
    split.to_csv(tmp_path / "split.csv", index=False)
    read = features.read_waveform

    def read_waveform(path: Path) -> torch.Tensor:  # e.g. a decoder that yields inf samples
        waveform = read(path)
        return waveform.fill_(float("inf")) if Path(path).name == "u2.wav" else waveform

    monkeypatch.setattr(features, "read_waveform", read_waveform)
    arguments = ["cache-features", str(tmp_path / "split.csv")]
    settings = {"backbone": {"name": "logmel"}, "search_space": {"maxlen": 16000}}
    arguments += ["--config-json", json.dumps(settings)]
    assert cli.main([*arguments, "--cache-dir", str(tmp_path / "features")]) == 2
    message = capsys.readouterr().err
    assert "logmel feature of utterance 'u2'" in message and "u2.wav" in message
