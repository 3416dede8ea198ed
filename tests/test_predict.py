"""``serhpo predict``: any sample rate and channel count, bad files reported, others labelled.

The model: a small log-Mel CNN retrained for 3 epochs on a synthetic EmoDB-layout corpus
(4 speakers x 3 utterances per label, four emotions); its quality does not matter here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr
import torch

from serhpo import cli
from serhpo.final import load_final_model, retrain
from serhpo.predict import Prediction, format_predictions, predict_files, windows_of

LABELS = ["anger", "happiness", "neutral", "sadness"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, make_synthetic_split) -> dict[str, Path]:
    """A retrained model folder and recordings: the prepared 16 kHz original of one
    utterance, the same at 48 kHz stereo and at 8 kHz, a file that is not audio, a
    missing file."""
    folder = tmp_path_factory.mktemp("predict")
    split = make_synthetic_split(folder, speakers=4, per_label=3, seed=2, labels=LABELS)
    config = {
        "seed": 0,
        "target_labels": LABELS,
        "backbone": {"name": "logmel"},
        "model": {"n_mels": 32, "channels": 8, "conv_blocks": 2, "embedding_size": 32},
        "training": {"batch_size": 8, "threads": 1, "maxlen": 16000},
    }
    best = {"engine": "ax", "trial": 0, "value": 0.5, "metric": "bca"}
    best["params"] = {"lr": 3e-3, "epochs": 3, "arch": "cnn"}
    retrain(config, best=best, split_csv=folder / "split.csv", model_dir=folder / "model",
            cache_dir=folder / "features")  # fmt: skip
    original = Path(split.loc[split["part"] == "test", "path"].iloc[0])
    samples, rate = sf.read(original, dtype="float32")
    assert rate == 16000
    high = soxr.resample(samples, 16000, 48000)
    sf.write(folder / "stereo48k.wav", np.stack([high, high], axis=1), 48000, subtype="PCM_24")
    sf.write(folder / "mono8k.flac", soxr.resample(samples, 16000, 8000), 8000)
    (folder / "notes.wav").write_text("this is not audio\n")
    return {
        "dir": folder / "model",
        "original": original,
        "stereo": folder / "stereo48k.wav",
        "narrow": folder / "mono8k.flac",
        "bad": folder / "notes.wav",
        "missing": folder / "missing.wav",
    }


def test_any_rate_and_channel_count_is_labelled_and_bad_files_are_reported(model, tmp_path, capsys):
    files = [model[k] for k in ("original", "stereo", "bad", "narrow", "missing")]
    out = tmp_path / "labels.csv"
    status = cli.main(
        ["predict", str(model["dir"]), *map(str, files), "--format", "csv", "--output", str(out)]
    )
    assert status == 1  # two files failed
    table = pd.read_csv(out, keep_default_na=False).set_index("file")
    assert list(table.index) == [str(f) for f in files]  # every file, in order
    assert list(table.columns) == ["label", *LABELS, "windows", "error"]
    good = table.loc[[str(model[k]) for k in ("original", "stereo", "narrow")]]
    assert (good["error"] == "").all() and good["label"].isin(LABELS).all()
    assert good[LABELS].astype(float).sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-6)
    # 48 kHz stereo of the same audio goes through the same preparation: the same answer.
    original, stereo = good[LABELS].astype(float).to_numpy()[:2]
    assert stereo == pytest.approx(original, abs=0.02)
    assert table.loc[str(model["bad"]), "error"].startswith("unreadable")
    assert table.loc[str(model["missing"]), "error"].startswith("unreadable")
    assert table.loc[str(model["bad"]), "label"] == ""
    errors = capsys.readouterr().err
    assert f"{model['bad']}: unreadable" in errors and f"{model['missing']}: unreadable" in errors


def test_a_table_and_json_and_exit_status_0_when_every_file_is_labelled(model, capsys):
    files = [str(model["stereo"]), str(model["narrow"])]
    assert cli.main(["predict", str(model["dir"]), *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["file", "label", *LABELS, "windows"]
    assert [line.split()[0] for line in lines[1:]] == files
    assert cli.main(["predict", str(model["dir"]), *files, "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in records] == files and all(r["error"] is None for r in records)
    assert all(r["label"] == max(r["probabilities"], key=r["probabilities"].get) for r in records)


def test_a_file_the_checks_reject_gets_their_reason(model, tmp_path):
    quiet = tmp_path / "short.wav"
    sf.write(quiet, np.zeros(1600, dtype=np.float32), 16000)  # 0.1 s of silence
    predictions = predict_files(load_final_model(model["dir"]), [quiet, model["original"]])
    assert predictions[0].error.startswith("too short") and not predictions[0].ok
    assert predictions[1].ok and predictions[1].label in LABELS


def test_real_ravdess_recordings_are_labelled(model, shared_corpora):
    actor = shared_corpora / "ravdess-sample" / "Actor_01"
    files = sorted(actor.glob("*.wav"))[:3]
    if not files:
        pytest.skip("no RAVDESS sample files")
    predictions = predict_files(load_final_model(model["dir"]), files)
    assert all(p.ok and p.label in LABELS for p in predictions), predictions


def test_a_folder_that_is_not_a_model_is_a_clear_error(model, tmp_path, capsys):
    assert cli.main(["predict", str(tmp_path), str(model["original"])]) == 2
    assert "is not a serhpo model folder" in capsys.readouterr().err


def test_the_table_shows_only_labelled_files():
    predictions = [
        Prediction("a.wav", "anger", {"anger": 0.75, "sadness": 0.25}, windows=2),
        Prediction("b.wav", None, error="unreadable: not audio"),
    ]
    text = format_predictions(predictions, labels=["anger", "sadness"])
    assert text.split() == [
        "file", "label", "anger", "sadness", "windows", "a.wav", "anger", "0.750", "0.250", "2",
    ]  # fmt: skip


def test_a_model_trained_on_level_normalised_audio_normalises_new_recordings(model, tmp_path):
    import shutil

    pytest.importorskip("pyloudnorm")
    model_dir = tmp_path / "model"
    shutil.copytree(model["dir"], model_dir)
    metadata = json.loads((model_dir / "model.json").read_text())
    assert metadata["loudness"] == {}  # trained without: nothing applied
    samples, rate = sf.read(model["original"], dtype="float32")
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, samples * 10 ** (-20 / 20), rate, subtype="FLOAT")
    plain = load_final_model(model["dir"])
    as_is = predict_files(plain, [model["original"], quiet])
    assert not plain.loudness.enabled
    metadata["loudness"] = {"enabled": True, "target_lufs": -23.0, "peak_dbfs": -1.0}
    (model_dir / "model.json").write_text(json.dumps(metadata))
    levelled = predict_files(load_final_model(model_dir), [model["original"], quiet])
    # The same recording 20 dB quieter gets the same probabilities once both are levelled.
    assert levelled[0].probabilities == pytest.approx(levelled[1].probabilities, abs=1e-3)
    assert as_is[0].probabilities != pytest.approx(as_is[1].probabilities, abs=1e-3)


# ---------------------------------------------------------------- non-finite scores, batch size


def _overflowing_copy(model_dir: Path, tmp_path: Path) -> Path:
    """A copy of the model whose output layer has finite but huge weights: logits overflow."""
    copy = Path(shutil.copytree(model_dir, tmp_path / "overflowing"))
    state = torch.load(copy / "model.pt", weights_only=True)
    last = [key for key, value in state.items() if key.endswith(".weight") and value.ndim == 2][-1]
    state[last] = torch.full_like(state[last], 3e38)
    torch.save(state, copy / "model.pt")
    return copy


def test_a_model_with_nan_weights_prints_no_label(model, tmp_path, capsys):
    broken = Path(shutil.copytree(model["dir"], tmp_path / "nan"))
    state = torch.load(broken / "model.pt", weights_only=True)
    next(value for value in state.values() if value.is_floating_point())[...] = float("nan")
    torch.save(state, broken / "model.pt")
    assert cli.main(["predict", str(broken), str(model["original"]), "--format", "json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"{broken / 'model.pt'} holds non-finite weights" in captured.err


def test_scores_that_overflow_are_error_rows_and_the_json_stays_json(model, tmp_path, capsys):
    overflowing = _overflowing_copy(model["dir"], tmp_path)
    final = load_final_model(overflowing)
    waveform = torch.from_numpy(sf.read(model["original"], dtype="float32")[0])
    assert not torch.isfinite(final.probabilities([waveform])).all()  # the premise
    files = [str(model["original"]), str(model["stereo"])]
    assert cli.main(["predict", str(overflowing), *files, "--format", "json"]) == 1
    captured = capsys.readouterr()

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    records = json.loads(captured.out, parse_constant=refuse)
    assert [r["label"] for r in records] == [None, None]
    assert all(
        "non-finite scores" in r["error"] and str(overflowing) in r["error"] for r in records
    )
    assert "Retrain it" in captured.err


@pytest.mark.parametrize("value", ["0", "-3", "two"])
def test_a_batch_size_below_one_is_refused_before_any_work(model, capsys, value: str):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", str(model["dir"]), str(model["original"]), "--batch-size", value])
    assert exit_info.value.code == 2
    assert "--batch-size: expected a whole number >= 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        predict_files(load_final_model(model["dir"]), [model["original"]], batch_size=0)


def test_windows_cover_a_recording_and_the_last_one_ends_with_it() -> None:
    assert windows_of(16000, length=16000) == [(0, 16000)]
    assert windows_of(40000, length=16000) == [(0, 16000), (16000, 32000), (24000, 40000)]
    assert windows_of(40000, length=None) == [(0, 40000)]
    covered = set()
    for start, end in windows_of(123457, length=16000):
        assert end - start == 16000
        covered.update(range(start, end))
    assert covered == set(range(123457))


def test_a_long_recording_is_labelled_from_all_its_windows_not_its_first_maxlen(model, tmp_path):
    """Issue: a 12-s file whose first 2 s were silent was labelled from those 2 s alone, and
    two different files got identical probabilities. The model's maxlen is 16000 (1 s)."""
    final = load_final_model(model["dir"])
    speech, rate = sf.read(model["original"], dtype="float32")
    audible = np.flatnonzero(np.abs(speech) > 1e-3)
    speech = speech[audible[0] : audible[-1]]  # no leading or trailing quiet: every window speaks
    silence = np.zeros(2 * rate, dtype=np.float32)
    first = np.concatenate([silence, np.tile(speech, 20)])[: 12 * rate]
    second = np.concatenate([silence, np.tile(speech[::-1], 20)])[: 12 * rate]  # other speech
    sf.write(tmp_path / "first.wav", first, rate)
    sf.write(tmp_path / "second.wav", second, rate)
    a, b = predict_files(final, [tmp_path / "first.wav", tmp_path / "second.wav"])
    assert a.ok and b.ok
    # 12 windows of 1 s; the two silent ones are not scored
    assert a.windows == b.windows == 10
    assert a.probabilities != pytest.approx(b.probabilities, abs=1e-4)
    records = json.loads(format_predictions([a], labels=final.labels, fmt="json"))
    assert records[0]["windows"] == 10
    # the scores are the mean of the scored windows' probabilities
    windows = [torch.from_numpy(first[s:e].copy()) for s, e in windows_of(len(first), length=16000)]
    speech_windows = [w for w in windows if w.abs().max() > 0]
    expected = final.probabilities(speech_windows).mean(dim=0)
    assert [a.probabilities[label] for label in final.labels] == pytest.approx(
        expected.tolist(), abs=1e-5
    )


def test_a_recording_whose_every_window_is_silent_is_rejected_as_silent(model, tmp_path):
    path = tmp_path / "hum.wav"
    rate = 16000
    quiet = np.zeros(5 * rate, dtype=np.float32)
    sf.write(path, quiet, rate)
    (prediction,) = predict_files(load_final_model(model["dir"]), [path])
    assert not prediction.ok and prediction.error.startswith("silent")
