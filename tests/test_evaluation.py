"""Evaluation JSONs: exact keys, numbers that agree with their confusion matrix, seeded
bootstrap intervals, the home test part versus a whole zero-shot corpus, the untuned head.

The data: a synthetic EmoDB-layout corpus (6 speakers x 3 utterances per label, 1.0-1.5 s)
restricted to five emotions, prepared and split (stratified, test 0.25) as the pipeline
does; a small log-Mel model retrained for 3 epochs (its quality does not matter here).
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import balanced_accuracy_score, f1_score

from serhpo import cli
from serhpo.errors import UserError
from serhpo.evaluation import (
    EVAL_KEYS,
    bootstrap_bca,
    bootstrap_scores,
    evaluate,
    evaluation_labels,
    score_predictions,
)
from serhpo.final import load_final_model, retrain
from serhpo.report.inputs import read_evaluation

LABELS = ["anger", "boredom", "happiness", "neutral", "sadness"]
MODEL = {"n_mels": 32, "channels": 8, "conv_blocks": 2, "embedding_size": 32}
TRAINING = {"batch_size": 8, "threads": 1, "maxlen": 16000}
BEST = {"engine": "hyperopt", "trial": 1, "value": 0.5, "metric": "bca"}
EXACT_KEYS = {
    "model", "corpus", "protocol", "part", "zero_shot", "label_set", "chance", "n", "labels",
    "bca", "bca_ci95", "accuracy", "macro_f1", "per_class_recall", "confusion", "unrestricted",
    "normalise", "loudness", "features", "notes",
}  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, make_synthetic_split) -> dict[str, Path]:
    """The split, a config, a zero-shot split without boredom, and a retrained model."""
    folder = tmp_path_factory.mktemp("evaluation")
    split = make_synthetic_split(folder, speakers=6, per_label=3, seed=1, labels=LABELS)
    split.to_csv(folder / "emodb.csv", index=False)
    # A stand-in zero-shot corpus: three speakers' labelled utterances, no boredom.
    speakers = sorted(split["speaker"].unique())[:3]
    other = split[split["speaker"].isin(speakers) & (split["label"] != "boredom")]
    other = other.assign(corpus="other")
    other.to_csv(folder / "other.csv", index=False)
    config = {
        "seed": 0,
        "target_labels": LABELS,
        "corpora": {
            "emodb": {"source": "synthetic", "role": "tune"},
            "other": {"source": "synthetic", "role": "zero_shot"},
        },
        "split": {"strategy": "speaker"},
        "backbone": {"name": "logmel"},
        "model": MODEL,
        "training": TRAINING,
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    model_dir = folder / "final" / "hyperopt" / "model"
    best = {**BEST, "params": {"lr": 3e-3, "epochs": 3, "arch": "cnn"}}
    retrain(config, best=best, split_csv=folder / "emodb.csv", model_dir=model_dir,
            cache_dir=folder / "features")  # fmt: skip
    return {
        "folder": folder,
        "split": folder / "emodb.csv",
        "other": folder / "other.csv",
        "config": folder / "config.yaml",
        "model": model_dir,
    }


def recompute(confusion: list[list[int]]) -> dict[str, float]:
    """BCA, accuracy and macro-F1 from a confusion matrix, over the rows with support."""
    counts = np.asarray(confusion)
    support = counts.sum(axis=1)
    present = support > 0
    hits = np.diag(counts)
    false_pos, false_neg = counts.sum(axis=0) - hits, support - hits
    f1 = 2 * hits / np.maximum(2 * hits + false_pos + false_neg, 1)
    return {
        "bca": float((hits[present] / support[present]).mean()),
        "accuracy": float(hits.sum() / counts.sum()),
        "macro_f1": float(f1[present].mean()),
    }


def check_consistent(result: dict) -> None:
    assert set(result) == EXACT_KEYS
    assert list(result) == list(EVAL_KEYS)
    expected = recompute(result["confusion"])
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key
    assert np.sum(result["confusion"]) == result["n"]
    assert result["chance"] == pytest.approx(
        1 / len(result["labels"] if result["label_set"] == "shared" else LABELS)
    )
    low, high = result["bca_ci95"]
    assert low <= result["bca"] <= high
    for label, row in zip(result["labels"], result["confusion"], strict=True):
        recall = result["per_class_recall"][label]
        assert (
            recall is None
            if sum(row) == 0
            else recall == pytest.approx(row[result["labels"].index(label)] / sum(row))
        )


def test_scores_agree_with_scikit_learn_and_with_their_confusion_matrix():
    rng = np.random.default_rng(0)
    y_true = rng.choice([0, 1, 3], size=200)  # label "c" never occurs in the truth
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 4, size=200))
    scores = score_predictions(y_true, y_pred, labels=["a", "b", "c", "d"], resamples=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "y_pred contains classes not in y_true"
        assert scores["bca"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert scores["macro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, labels=[0, 1, 3], average="macro")
    )
    assert scores["per_class_recall"]["c"] is None and scores["absent_labels"] == ["c"]
    assert scores["confusion"][2] == [0, 0, 0, 0] and sum(np.array(scores["confusion"])[:, 2]) > 0
    for key, value in recompute(scores["confusion"]).items():
        assert scores[key] == pytest.approx(value)


def test_the_bootstrap_interval_holds_the_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 4, size=120)
    y_pred = np.where(rng.random(120) < 0.7, y_true, rng.integers(0, 4, size=120))
    point = balanced_accuracy_score(y_true, y_pred)
    low, high = bootstrap_bca(y_true, y_pred, resamples=500, seed=3)
    assert low < point < high and high - low < 0.4
    assert bootstrap_bca(y_true, y_pred, resamples=500, seed=3) == (low, high)
    assert bootstrap_bca(y_true, y_pred, resamples=500, seed=4) != (low, high)


def test_each_resample_scores_as_scikit_learn_even_when_it_misses_a_class():
    # Class 2 has one utterance: about a third of the resamples leave it out entirely.
    y_true = np.array([0] * 10 + [1] * 10 + [2])
    y_pred = np.array([0] * 10 + [0] * 5 + [1] * 5 + [2])
    scores = bootstrap_scores(y_true, y_pred, resamples=300, seed=0)
    draws = np.random.default_rng(0).integers(0, len(y_true), size=(300, len(y_true)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "y_pred contains classes not in y_true"
        expected = [balanced_accuracy_score(y_true[d], y_pred[d]) for d in draws]
    assert scores == pytest.approx(expected)
    assert sum(2 not in y_true[d] for d in draws) > 50  # the case did occur
    low, high = bootstrap_bca(y_true, y_pred, resamples=300, seed=0)
    assert [low, high] == pytest.approx(np.percentile(expected, [2.5, 97.5]))
    assert all(math.isnan(bound) for bound in bootstrap_bca([], [], resamples=10))


def test_labels_follow_the_target_order_and_keep_what_the_model_cannot_predict():
    labels = evaluation_labels(["neutral", "anger"], ["anger", "fear"], target_labels=LABELS)
    assert labels == ["anger", "neutral", "fear"]


def test_the_home_corpus_is_scored_on_its_test_part(setup, tmp_path):
    out = tmp_path / "eval" / "hyperopt" / "emodb.json"
    status = cli.main(
        [
            "evaluate", "--model-dir", str(setup["model"]), "--split", str(setup["split"]),
            "--corpus", "emodb", "--config", str(setup["config"]), "--bootstrap", "200",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    result = json.loads(out.read_text())
    check_consistent(result)
    split = pd.read_csv(setup["split"])
    assert result["n"] == int((split["part"] == "test").sum())
    assert (result["model"], result["corpus"], result["part"]) == ("hyperopt", "emodb", "test")
    assert result["zero_shot"] is False and result["protocol"] == "speaker"
    assert result["labels"] == LABELS
    read_evaluation(out)  # the report stage accepts it


def test_a_zero_shot_corpus_is_scored_whole_and_a_missing_label_is_reported(setup, tmp_path):
    out = tmp_path / "other.json"
    status = cli.main(
        [
            "evaluate", "--model-dir", str(setup["model"]), "--split", str(setup["other"]),
            "--config", str(setup["config"]), "--bootstrap", "200", "--out", str(out),
            "--zero-shot-labels", "all",
        ]
    )  # fmt: skip
    assert status == 0
    result = json.loads(out.read_text())
    check_consistent(result)
    assert result["n"] == len(pd.read_csv(setup["other"]))  # every part, every labelled row
    assert (result["corpus"], result["part"], result["zero_shot"]) == ("other", "all", True)
    assert (result["label_set"], result["unrestricted"]) == ("all", None)
    assert result["per_class_recall"]["boredom"] is None
    assert result["confusion"][LABELS.index("boredom")] == [0] * len(LABELS)
    assert any("boredom" in note and "absent" in note for note in result["notes"])
    present = [r for r in result["per_class_recall"].values() if r is not None]
    assert result["bca"] == pytest.approx(np.mean(present)) and len(present) == 4


def test_the_pretrained_head_of_the_tiny_backbone_gives_a_zero_shot_json(setup, tmp_path):
    from serhpo.backbones.tiny import build_tiny_backbone

    build_tiny_backbone(tmp_path / "tiny", seed=0)
    out = tmp_path / "pretrained" / "emodb.json"
    # As the Snakemake rule calls it: only the keys it reads, no config file.
    status = cli.main(
        [
            "evaluate", "--pretrained", str(tmp_path / "tiny"), "--split", str(setup["split"]),
            "--corpus", "emodb", "--role", "tune", "--protocol", "stratified",
            "--config-json", json.dumps({"target_labels": LABELS}), "--bootstrap", "100",
            "--threads", "1", "--out", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    result = json.loads(out.read_text())
    check_consistent(result)
    assert (result["model"], result["part"], result["zero_shot"]) == ("pretrained", "test", True)
    # Scored on the four IEMOCAP labels it shares with the corpus; boredom's rows left out.
    assert result["label_set"] == "shared" and result["chance"] == 0.25
    assert result["labels"] == ["anger", "happiness", "neutral", "sadness"]
    split = pd.read_csv(setup["split"])
    test = split[split["part"] == "test"]
    assert result["n"] == int((test["label"] != "boredom").sum())
    unrestricted = result["unrestricted"]
    assert unrestricted["labels"] == LABELS  # IEMOCAP's four mapped, plus boredom from the truth
    assert unrestricted["n"] == len(test) and unrestricted["chance"] == 0.25
    boredom = LABELS.index("boredom")
    assert all(row[boredom] == 0 for row in unrestricted["confusion"])  # never predicted


def test_a_home_corpus_without_a_test_part_is_a_user_error(setup, tmp_path):
    split = pd.read_csv(setup["split"])
    split[split["part"] != "test"].to_csv(tmp_path / "no_test.csv", index=False)
    with pytest.raises(UserError, match="no labelled test part"):
        evaluate(
            load_final_model(setup["model"]), split_csv=tmp_path / "no_test.csv",
            model_name="hyperopt", role="tune", protocol="stratified", resamples=10,
        )  # fmt: skip


def test_zero_shot_scores_the_shared_labels_by_default_and_keeps_the_unrestricted_score(
    setup, tmp_path
):
    final = load_final_model(setup["model"])
    # Logits that always favour boredom, which the zero-shot corpus never holds: over all
    # outputs every utterance is an error; over the shared labels the runner-up counts.
    true_logits = final.logits_of_items

    def boredom_first(items, *, batch_size=8):
        logits = true_logits(items, batch_size=batch_size)
        logits[:, final.labels.index("boredom")] = 1e6
        return logits

    final.logits_of_items = boredom_first
    kwargs = dict(
        split_csv=setup["other"], model_name="hyperopt", role="zero_shot", protocol="speaker",
        target_labels=LABELS, resamples=50,
    )  # fmt: skip
    shared = evaluate(final, **kwargs)
    check_consistent(shared)
    assert shared["label_set"] == "shared"
    assert shared["labels"] == ["anger", "happiness", "neutral", "sadness"]
    assert shared["chance"] == 0.25 and shared["n"] == len(pd.read_csv(setup["other"]))
    assert shared["bca"] > 0.25  # the model's own ranking of the four labels
    unrestricted = shared["unrestricted"]
    assert unrestricted["bca"] == 0.0 and unrestricted["chance"] == 0.2
    assert unrestricted["labels"] == LABELS
    everything = evaluate(final, zero_shot_labels="all", **kwargs)
    assert everything["bca"] == 0.0 and everything["label_set"] == "all"
    assert everything["chance"] == 0.2 and everything["unrestricted"] is None


def test_features_come_from_the_cache_once_per_feature_and_preprocessing(setup, tmp_path):
    from serhpo.data import Preprocessing
    from serhpo.features import FeatureCache

    kwargs = dict(
        split_csv=setup["other"], model_name="hyperopt", role="zero_shot", protocol="speaker",
        target_labels=LABELS, resamples=20,
    )  # fmt: skip
    n = len(pd.read_csv(setup["other"]))
    final = load_final_model(setup["model"])

    def cache() -> FeatureCache:  # a new process' cache: nothing in memory
        return FeatureCache(tmp_path / "features", backbone=final.cache_name, memory_bytes=0)

    first = evaluate(final, cache=cache(), **kwargs)
    assert first["features"] == {
        "cache_dir": str(tmp_path / "features"), "read": 0, "computed": n
    }  # fmt: skip
    second = evaluate(load_final_model(setup["model"]), cache=cache(), **kwargs)
    assert (second["features"]["read"], second["features"]["computed"]) == (n, 0)
    assert second["confusion"] == first["confusion"]
    uncached = evaluate(final, **kwargs)  # computed in memory: the same predictions
    assert uncached["confusion"] == first["confusion"] and uncached["features"]["computed"] == n
    # A model that preprocesses differently gets its own entries.
    final.preprocessing = Preprocessing(maxlen=8000, padding=True)
    other = evaluate(final, cache=cache(), **kwargs)
    assert (other["features"]["read"], other["features"]["computed"]) == (0, n)


def test_a_model_trained_with_speaker_normalisation_standardises_the_scored_corpus(setup, tmp_path):
    import shutil

    from serhpo.data import load_split
    from serhpo.normalisation import normalise_items

    model_dir = tmp_path / "model"
    shutil.copytree(setup["model"], model_dir)
    metadata = json.loads((model_dir / "model.json").read_text())
    metadata["training"]["normalise"] = "speaker"
    (model_dir / "model.json").write_text(json.dumps(metadata))
    final = load_final_model(model_dir)
    out = tmp_path / "other.json"
    status = cli.main(
        [
            "evaluate", "--model-dir", str(model_dir), "--split", str(setup["other"]),
            "--config", str(setup["config"]), "--bootstrap", "20", "--out", str(out),
            "--cache-dir", str(tmp_path / "features"),
        ]
    )  # fmt: skip
    assert status == 0
    result = json.loads(out.read_text())
    assert result["normalise"] == "speaker" and result["loudness"] == "off"
    assert any("per speaker" in note for note in result["notes"])
    # The same predictions as standardising each speaker's features by hand.
    split = load_split(setup["other"], parts=("train", "valid", "test"), labels=LABELS)
    utterances = [u for part in ("train", "valid", "test") for u in split.parts[part]]
    feature = final.model.frozen_feature(final.model.stage)
    items = normalise_items(
        final.feature_items(utterances), utterances, mode="speaker", sequence=feature.sequence
    )
    predicted = final.logits_of_items(items).argmax(dim=1).numpy()
    counts = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    for utterance, output in zip(utterances, predicted, strict=True):
        shared = result["labels"]
        if utterance.label in shared:
            counts[LABELS.index(utterance.label), LABELS.index(final.labels[output])] += 1
    index = [LABELS.index(label) for label in result["labels"]]
    assert np.array_equal(counts[np.ix_(index, index)], np.array(result["confusion"]))
    # Without the key (an older model): none.
    del metadata["training"]["normalise"]
    (model_dir / "model.json").write_text(json.dumps(metadata))
    plain = evaluate(
        load_final_model(model_dir), split_csv=setup["other"], model_name="m",
        role="zero_shot", protocol="speaker", target_labels=LABELS, resamples=10,
    )  # fmt: skip
    assert plain["normalise"] == "none"
    assert plain["confusion"] != result["confusion"]  # the standardisation changed predictions


def test_non_finite_logits_are_refused_not_scored(setup, tmp_path, capsys):
    """Finite but huge output weights overflow: evaluate names the model, scores nothing."""
    model_dir = Path(shutil.copytree(setup["model"], tmp_path / "model"))
    state = torch.load(model_dir / "model.pt", weights_only=True)
    last = [key for key, value in state.items() if key.endswith(".weight") and value.ndim == 2][-1]
    state[last] = torch.full_like(state[last], 3e38)
    torch.save(state, model_dir / "model.pt")
    out = tmp_path / "emodb.json"
    status = cli.main(
        [
            "evaluate", "--model-dir", str(model_dir), "--split", str(setup["split"]),
            "--corpus", "emodb", "--config", str(setup["config"]), "--out", str(out),
        ]
    )  # fmt: skip
    assert status == 2 and not out.exists()
    err = capsys.readouterr().err
    assert f"the model {model_dir} produced non-finite scores" in err
    assert "utterances of emodb" in err and "Retrain it" in err


def test_one_call_scores_every_corpus_as_separate_calls_do(setup, tmp_path):
    """The workflow's evaluate job: one model, several corpora, one JSON each, loaded once."""

    def evaluate_cli(*args: str) -> int:
        return cli.main(
            ["evaluate", "--model-dir", str(setup["model"]), "--config", str(setup["config"]),
             "--bootstrap", "50", "--cache-dir", str(tmp_path / "features"), *args]
        )  # fmt: skip

    together = [tmp_path / "together" / f"{name}.json" for name in ("emodb", "other")]
    status = evaluate_cli(
        "--split", str(setup["split"]), str(setup["other"]), "--corpus", "emodb", "other",
        "--role", "tune", "zero_shot", "--out", *map(str, together),
    )  # fmt: skip
    assert status == 0
    splits = (setup["split"], setup["other"])
    for split, corpus, out in zip(splits, ("emodb", "other"), together, strict=True):
        alone = tmp_path / "alone" / f"{corpus}.json"
        assert evaluate_cli("--split", str(split), "--corpus", corpus, "--out", str(alone)) == 0
        first, second = json.loads(out.read_text()), json.loads(alone.read_text())
        check_consistent(first)
        assert (first["corpus"], first["part"]) == (corpus, "test" if corpus == "emodb" else "all")
        # Equal but for the cache counts: the second call reads what the first computed.
        assert {**first, "features": None} == {**second, "features": None}


def test_a_value_missing_for_one_of_several_corpora_is_a_user_error(setup, tmp_path, capsys):
    status = cli.main(
        ["evaluate", "--model-dir", str(setup["model"]), "--config", str(setup["config"]),
         "--split", str(setup["split"]), str(setup["other"]), "--out", str(tmp_path / "a.json")]
    )  # fmt: skip
    assert status == 2 and not (tmp_path / "a.json").exists()
    assert "--out has 1 value(s) for 2 --split CSV(s)" in capsys.readouterr().err
