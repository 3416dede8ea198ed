"""Benchmark: speech emotion recognition on real EmoDB, leave-one-speaker-out (LOSO), nested.

Data: ``../shared/corpora/emodb-2s/wav`` (all 535 EmoDB utterances, a third-party copy at
22,050 Hz cut to 2.0 s), prepared by the pipeline's own ``prepare_corpus`` (mono 16 kHz), and
for zero-shot scoring the shared RAVDESS actors 01-02 (``../shared/corpora/ravdess-sample``).

Protocol: every one of the 10 speakers is held out once (LOSO). BCA (= UAR, unweighted average
recall) is pooled over all held-out predictions, with a 95 % interval from a bootstrap that
resamples SPEAKERS (:func:`serhpo.cvpool.speaker_bootstrap_bca`), and given per speaker.

Rows, all in one run:

* ``whisper tuned (pipeline, <engine>)``: the pipeline's own nested speaker cross-validation
  (``split.folds: loso``): for each held-out speaker a study of the engine (30 trials) on the
  other nine, selecting on inner speaker folds, the best configuration retrained on the nine and
  scored once on the held-out speaker. Run by Snakemake in ``<work-dir>/pipeline`` with
  ``config.yaml`` + ``profiles/whisper/whisper-config.yaml`` + the corpora above. Its single-split
  model also scores RAVDESS zero-shot on the labels the two corpora share.
* ``whisper untuned``: the plain recipe (mean over the last layer's audio frames,
  StandardScaler + LogisticRegression C=0.1), per window.
* ``egemaps + linear SVM``: eGeMAPS functionals, standardised linear SVM, C chosen by inner
  speaker-grouped CV (the reference recipe, LOSO UAR 0.601 on this copy).
* ``logmel <arch>``: a log-Mel head trained from scratch with a fixed configuration.

Run from the repository root (features are cached under the work folder, so a rerun only
trains)::

    python benchmarks/realdata_emodb.py                  # everything: about 40 min on 2 cores
    python benchmarks/realdata_emodb.py --skip-pipeline --archs cnn_gru
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from serhpo.corpora import get_format
from serhpo.cvpool import speaker_bootstrap_bca
from serhpo.data import Preprocessing, load_split
from serhpo.features import FeatureCache
from serhpo.metrics import classification_scores
from serhpo.models import build_model
from serhpo.models.logmel import ARCHITECTURES
from serhpo.prepare import prepare_corpus
from serhpo.trainer import TrainingData, fit

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO_ROOT / ".." / "shared" / "corpora" / "emodb-2s" / "wav"
DEFAULT_ZERO_SHOT = REPO_ROOT / ".." / "shared" / "corpora" / "ravdess-sample"
BOOTSTRAP = 1000
LABELS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]

#: One fixed configuration per log-Mel head (the log-Mel comparison's best: lr ~7.5e-4,
#: batch 16, embedding 128); all files are 2 s, so maxlen 32000 keeps them whole.
LOGMEL: dict[str, Any] = {
    "lr": 1e-3, "epochs": 20, "batch_size": 16, "maxlen": 32000, "weight_decay": 1e-2,
    "embedding_size": 128, "dropout": 0.3, "channels": 16, "conv_blocks": 3, "n_mels": 64,
    "num_layers": 1, "num_heads": 4, "collapse_after": None,
}  # fmt: skip
EGEMAPS: dict[str, Any] = {
    "lr": 1e-2, "epochs": 30, "batch_size": 16, "maxlen": 32000, "weight_decay": 1e-2,
    "collapse_after": None,
}  # fmt: skip

#: The issue's untuned recipe: the last of tiny.en's 4 layers, mean over audio frames,
#: StandardScaler + LogisticRegression(C=0.1); whole 2-s clips.
WHISPER_UNTUNED: dict[str, Any] = {
    "head": "logreg", "C": 0.1, "layer": 4, "pooling": "mean", "maxlen": None,
    "padding": False,
}  # fmt: skip
WINDOWS = ("30s", "utterance")

log = logging.getLogger("benchmark")


def prepare(corpus_dir: Path, work_dir: Path) -> pd.DataFrame:
    """Prepare the corpus once (mono 16 kHz) and return its manifest."""
    manifest_path = work_dir / "manifest.csv"
    if manifest_path.is_file():
        return pd.read_csv(manifest_path, dtype={"speaker": str, "utterance_id": str})
    prepared = prepare_corpus(
        corpus="emodb", fmt=get_format("emodb"), raw_dir=corpus_dir, out_dir=work_dir / "16k",
        target_labels=LABELS, threads=2,
    )  # fmt: skip
    prepared.manifest.to_csv(manifest_path, index=False)
    return prepared.manifest


def speaker_folds(manifest: pd.DataFrame, *, protocol: str = "loso") -> list[list[str]]:
    """``loso``: one speaker per fold. ``pairs``: one female and one male speaker per fold."""
    if protocol == "loso":
        return [[speaker] for speaker in sorted(manifest["speaker"].astype(str).unique())]
    speakers = manifest.drop_duplicates("speaker").sort_values("speaker")
    female = speakers.loc[speakers["gender"] == "female", "speaker"].tolist()
    male = speakers.loc[speakers["gender"] == "male", "speaker"].tolist()
    if len(female) == len(male):
        return [sorted(pair) for pair in zip(female, male, strict=True)]
    ordered = speakers["speaker"].tolist()
    return [ordered[i : i + 2] for i in range(0, len(ordered), 2)]


def fold_split(manifest: pd.DataFrame, held_out: list[str], path: Path) -> Path:
    """Write a split CSV: the held-out speakers are the scored ('valid') part."""
    rows = manifest[manifest["label"].fillna("") != ""]
    rows = rows.assign(part=np.where(rows["speaker"].isin(held_out), "valid", "train"))
    rows.to_csv(path, index=False)
    return path


def pooled(confusions: list[list[list[int]]]) -> dict[str, float]:
    """BCA and accuracy of summed confusion matrices (rows: true classes)."""
    total = np.sum(np.array(confusions), axis=0)
    support = total.sum(axis=1)
    recall = np.diag(total)[support > 0] / support[support > 0]
    return {"bca": float(recall.mean()), "accuracy": float(np.trace(total) / total.sum())}


def run_trainer(
    name: str,
    backbone: str,
    params: dict[str, Any],
    splits: list[Path],
    cache: Path,
    speakers: list[str] | None = None,
) -> dict[str, Any]:
    """Train the configuration on each fold; collect the last epoch's held-out scores."""
    folds, started = [], time.perf_counter()
    for fold, split_csv in enumerate(splits):
        data = TrainingData(
            split=load_split(split_csv, labels=LABELS, root=REPO_ROOT),
            cache=FeatureCache(cache, backbone=backbone, progress=True),
            backbone=backbone,
        )
        outcome = fit(params, data, seed=fold)
        result = outcome.result
        log.info("%s fold %d: %s BCA %.3f %s", name, fold, result.status, result.value,
                 result.reason)  # fmt: skip
        folds.append({"status": str(result.status), "reason": result.reason,
                      "history": result.history, **outcome.scores})  # fmt: skip
    return summarise(name, folds, seconds=time.perf_counter() - started, speakers=speakers)


def speaker_interval(confusions: list[list[list[int]]], speakers: list[str]) -> list[float]:
    """The pooled BCA's 95 % interval from the pipeline's speaker (cluster) bootstrap.

    Each LOSO fold's confusion matrix is one speaker's predictions; they are expanded back into
    (true, predicted) pairs so that :func:`serhpo.cvpool.speaker_bootstrap_bca` resamples them.
    """
    y_true, y_pred, groups = [], [], []
    for confusion, speaker in zip(confusions, speakers, strict=True):
        for true, row in enumerate(confusion):
            for predicted, count in enumerate(row):
                y_true += [true] * count
                y_pred += [predicted] * count
                groups += [speaker] * count
    low, high = speaker_bootstrap_bca(
        np.array(y_true), np.array(y_pred), np.array(groups), resamples=BOOTSTRAP, seed=0
    )
    return [low, high]


def summarise(
    name: str, folds: list[dict[str, Any]], *, seconds: float, speakers: list[str] | None = None
) -> dict[str, Any]:
    """Pooled BCA (speaker-bootstrap interval with one speaker per fold) and per-fold BCA."""
    scored = [f for f in folds if "confusion" in f]
    per_fold = [f["bca"] for f in scored]
    interval = None
    if speakers is not None and len(scored) == len(folds):
        interval = speaker_interval([f["confusion"] for f in scored], speakers)
    return {
        "model": name,
        **pooled([f["confusion"] for f in scored]),
        "bca_ci95": interval,
        "per_speaker": dict(zip(speakers, per_fold, strict=True)) if interval else None,
        "fold_bca_mean": float(np.mean(per_fold)),
        "fold_bca_std": float(np.std(per_fold)),
        "macro_f1_mean": float(np.mean([f["macro_f1"] for f in scored])),
        "failed_folds": len(folds) - len(scored),
        "seconds": round(seconds, 1),
        "folds": folds,
    }


def run_sklearn(
    splits: list[Path], cache: Path, speakers: list[str] | None = None
) -> list[dict[str, Any]]:
    """Standardised logistic regression and linear SVM on the cached eGeMAPS functionals."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    candidates = {
        "egemaps + linear SVM (C by inner speaker CV)": LinearSVC(max_iter=20000),
        "egemaps + logistic regression (C by inner speaker CV)": LogisticRegression(max_iter=5000),
    }
    results = []
    for name, estimator in candidates.items():
        folds, started = [], time.perf_counter()
        feature = build_model("egemaps", num_classes=len(LABELS)).frozen_feature("train")
        features = FeatureCache(cache, backbone="egemaps")
        prep = Preprocessing(maxlen=EGEMAPS["maxlen"])
        for split_csv in splits:
            split = load_split(split_csv, labels=LABELS, root=REPO_ROOT)

            groups = [u.speaker for u in split.parts["train"]]
            search = GridSearchCV(
                make_pipeline(StandardScaler(), estimator),
                {"logisticregression__C" if "logistic" in name else "linearsvc__C":
                 [1e-3, 1e-2, 1e-1, 1.0, 10.0]},
                scoring="balanced_accuracy", cv=GroupKFold(n_splits=4),
            )  # fmt: skip
            train = _matrix(features, feature, split.parts["train"], prep)
            search.fit(train, split.targets("train"), groups=groups)
            predictions = search.predict(_matrix(features, feature, split.parts["valid"], prep))
            scores = classification_scores(split.targets("valid"), predictions, labels=LABELS)
            folds.append({"status": "complete", "C": search.best_params_, **scores})
        results.append(
            summarise(name, folds, seconds=time.perf_counter() - started, speakers=speakers)
        )
    return results


def _matrix(cache: FeatureCache, feature, utterances, prep: Preprocessing) -> np.ndarray:
    items = cache.get_many(feature, utterances, prep)
    return torch.stack([item.values for item in items]).numpy()


def pipeline_config(args: argparse.Namespace) -> dict[str, Any]:
    """The override of config.yaml + the Whisper profile: real corpora, LOSO, the engines."""
    return {
        "corpora": {
            "emodb": {"source": str(args.corpus_dir.resolve())},
            "ravdess": {"source": str(args.zero_shot_dir.resolve()), "expect_count": None},
            "cremad": None,  # not on this machine: removed
        },
        "split": {"strategy": "speaker", "folds": "loso", "inner_folds": args.inner_folds},
        "hpo": {"engines": args.engines, "n_trials": args.n_trials},
        "training": {"threads": 1},
        "evaluation": {"bootstrap": BOOTSTRAP},
    }


def run_pipeline(args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    """Run the nested LOSO (and the single split with its zero-shot scores) with Snakemake."""
    dag = work_dir / "pipeline"
    dag.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml", "workflow", "profiles", "envs"):
        if not (dag / name).exists():
            (dag / name).symlink_to(REPO_ROOT / name)
    (dag / "benchmark.yaml").write_text(yaml.safe_dump(pipeline_config(args)))
    targets = [f"results/cv/{engine}/pooled.json" for engine in args.engines]
    targets += [f"results/eval/{engine}/ravdess.json" for engine in args.engines]
    targets += [f"results/eval/{engine}/emodb.json" for engine in args.engines]
    started = time.perf_counter()
    command = [
        "snakemake", "--cores", str(args.cores), "--rerun-incomplete", *targets, "--configfile",
        "config.yaml", "profiles/whisper/whisper-config.yaml", "benchmark.yaml",
    ]  # fmt: skip
    log.info("running %s in %s", " ".join(command), dag)
    subprocess.run(command, cwd=dag, check=True)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 1), **read_pipeline(dag, args.engines)}


def read_pipeline(dag: Path, engines: list[str]) -> dict[str, Any]:
    """The pooled LOSO scores, chosen configurations, zero-shot scores and costs of a run."""
    rows, zero_shot, configs, costs = [], [], {}, {}
    for engine in engines:
        pooled_scores = json.loads((dag / f"results/cv/{engine}/pooled.json").read_text())
        speakers = pd.read_csv(dag / f"results/cv/{engine}/per_speaker.csv", dtype={"speaker": str})
        trials = pd.concat(
            pd.read_csv(path)
            for path in sorted(dag.glob(f"results/hpo/{engine}/fold-*/trials.csv"))
        )
        rows.append(
            {
                "model": f"whisper tuned (pipeline, {engine}, {len(trials)} trials)",
                "bca": pooled_scores["bca"],
                "accuracy": pooled_scores["accuracy"],
                "bca_ci95": pooled_scores["bca_ci95"],
                "per_speaker": dict(zip(speakers["speaker"], speakers["bca"], strict=True)),
                "fold_bca_mean": float(speakers["bca"].mean()),
                "fold_bca_std": float(speakers["bca"].std(ddof=0)),
                "macro_f1_mean": pooled_scores.get("macro_f1", float("nan")),
                "failed_folds": 0,
                "seconds": float(trials["trial_seconds"].sum())
                if "trial_seconds" in trials
                else float("nan"),
            }
        )
        configs[engine] = pd.read_csv(dag / f"results/cv/{engine}/configs.csv").to_dict("records")
        if "trial_seconds" in trials:
            costs[engine] = {
                "trials": len(trials),
                "median_trial_seconds": float(trials["trial_seconds"].median()),
                "mean_trial_seconds": float(trials["trial_seconds"].mean()),
            }
        for corpus in ("emodb", "ravdess"):
            scores = json.loads((dag / f"results/eval/{engine}/{corpus}.json").read_text())
            zero_shot.append({"engine": engine, "corpus": corpus, **scores})
    embedding = {}
    for log_file in sorted(dag.glob("logs/cache_features/*.log")):
        embedding[log_file.stem] = log_file.read_text()[-2000:]
    return {
        "rows": rows,
        "configs": configs,
        "single_split": zero_shot,
        "trial_costs": costs,
        "cache_logs": embedding,
    }


def run_whisper_untuned(
    splits: list[Path], cache: Path, speakers: list[str], threads: int
) -> list[dict[str, Any]]:
    """The untuned recipe per window; the first pass also times the embedding of the corpus."""
    results = []
    for window in WINDOWS:
        started = time.perf_counter()
        params = {**WHISPER_UNTUNED, "window": window, "threads": threads}
        result = run_trainer(
            f"whisper untuned ({window} window)", "whisper", params, splits, cache, speakers
        )
        result["seconds_with_embedding"] = round(time.perf_counter() - started, 1)
        results.append(result)
    return results


def table(results: list[dict[str, Any]]) -> str:
    """A Markdown table of the results."""
    lines = [
        "| model | pooled BCA | speaker-bootstrap 95 % CI | pooled accuracy "
        "| speaker BCA mean +- sd | macro-F1 | failed folds | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        interval = r.get("bca_ci95")
        ci = f"{interval[0]:.3f}-{interval[1]:.3f}" if interval else "-"
        lines.append(
            f"| {r['model']} | {r['bca']:.3f} | {ci} | {r['accuracy']:.3f} | "
            f"{r['fold_bca_mean']:.3f} +- {r['fold_bca_std']:.3f} | {r['macro_f1_mean']:.3f} | "
            f"{r['failed_folds']} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table, write JSON and Markdown in the work folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus-dir", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--zero-shot-dir", type=Path, default=DEFAULT_ZERO_SHOT)
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / "benchmarks/output/emodb-2s")
    parser.add_argument("--protocol", choices=["loso", "pairs"], default="loso")
    parser.add_argument("--engines", nargs="+", default=["optuna", "random"])
    parser.add_argument("--n-trials", type=int, default=30, help="trials per outer-fold study")
    parser.add_argument("--inner-folds", default=3, help="inner speaker folds (or loso)")
    parser.add_argument("--cores", type=int, default=2, help="Snakemake's --cores")
    parser.add_argument("--archs", nargs="*", default=["cnn_gru"], choices=ARCHITECTURES)
    parser.add_argument("--epochs", type=int, default=LOGMEL["epochs"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training run")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--no-egemaps", action="store_true")
    parser.add_argument("--no-whisper-untuned", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not args.corpus_dir.is_dir():
        print(f"no corpus at {args.corpus_dir}; pass --corpus-dir", file=sys.stderr)
        return 2

    args.work_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
        f"torch {torch.__version__}",
        "protocol": "leave-one-speaker-out"
        if args.protocol == "loso"
        else "5 leave-two-speakers-out folds (one female, one male held out)",
    }
    results: list[dict[str, Any]] = []
    if not args.skip_pipeline:
        report["pipeline"] = run_pipeline(args, args.work_dir)
        results += report["pipeline"]["rows"]
        print(table(results), flush=True)

    manifest = prepare(args.corpus_dir, args.work_dir)
    folds = speaker_folds(manifest, protocol=args.protocol)
    speakers = ["+".join(held_out) for held_out in folds]
    splits = [
        fold_split(manifest, held_out, args.work_dir / f"split_{args.protocol}{i}.csv")
        for i, held_out in enumerate(folds)
    ]
    cache = args.work_dir / "features"
    if not args.no_whisper_untuned:
        results += run_whisper_untuned(splits, cache, speakers, args.threads)
        print(table(results[-2:]), flush=True)
    if not args.no_egemaps:
        results += run_sklearn(splits, cache, speakers)
        print(table(results[-2:]), flush=True)
    for arch in args.archs:
        params = {**LOGMEL, "arch": arch, "epochs": args.epochs, "threads": args.threads}
        results.append(run_trainer(f"logmel {arch}", "logmel", params, splits, cache, speakers))
        print(table(results[-1:]), flush=True)

    report.update(folds=folds, logmel_params=LOGMEL, whisper_untuned=WHISPER_UNTUNED)
    report["results"] = results
    (args.work_dir / "results.json").write_text(json.dumps(report, indent=2, default=str))
    markdown = table(results)
    (args.work_dir / "results.md").write_text(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
