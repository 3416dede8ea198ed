"""Benchmark: the log-Mel family and the eGeMAPS baseline on real EmoDB, speaker-independent.

Data: ``../shared/corpora/emodb-2s/wav`` (all 535 EmoDB utterances, a third-party copy at
22,050 Hz cut to 2.0 s), prepared by the pipeline's own ``prepare_corpus`` (mono 16 kHz).
Protocol: five leave-two-speakers-out folds (each fold holds out one female and one male
speaker; the model trains on the other eight speakers with a FIXED configuration, no
tuning and no early stopping, and is scored on the held-out pair). BCA (= UAR) is
reported pooled over the five folds (the confusion matrices summed, as the LOSO
reference in paper-figures.md) and as mean +- standard deviation across folds.

Models: every log-Mel head (one configuration each, see ``LOGMEL``), the eGeMAPS
baseline as the project trains it (a standardised torch Linear, ``EGEMAPS``), and as a
check on it scikit-learn's standardised logistic regression and linear SVM on the same
cached functionals, with C chosen by an inner speaker-grouped 4-fold CV on the training
speakers (the recipe of the reference eGeMAPS + linear SVM, LOSO UAR 0.601).

Run from the repository root (features are cached under the work folder, so a rerun
only trains)::

    python benchmarks/realdata_emodb.py                       # everything, about 1 h on 2 cores
    python benchmarks/realdata_emodb.py --archs cnn mlp --epochs 10
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from serhpo.corpora import get_format
from serhpo.data import Preprocessing, load_split
from serhpo.features import FeatureCache
from serhpo.metrics import classification_scores
from serhpo.models import build_model
from serhpo.models.logmel import ARCHITECTURES
from serhpo.prepare import prepare_corpus
from serhpo.training import TrainingData, fit

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO_ROOT / ".." / "shared" / "corpora" / "emodb-2s" / "wav"
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


def speaker_folds(manifest: pd.DataFrame) -> list[list[str]]:
    """Pairs of one female and one male speaker, in speaker order: five folds on EmoDB."""
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
    name: str, backbone: str, params: dict[str, Any], splits: list[Path], cache: Path
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
    return summarise(name, folds, seconds=time.perf_counter() - started)


def summarise(name: str, folds: list[dict[str, Any]], *, seconds: float) -> dict[str, Any]:
    """Pooled and per-fold BCA of one model."""
    scored = [f for f in folds if "confusion" in f]
    per_fold = [f["bca"] for f in scored]
    return {
        "model": name,
        **pooled([f["confusion"] for f in scored]),
        "fold_bca_mean": float(np.mean(per_fold)),
        "fold_bca_std": float(np.std(per_fold)),
        "macro_f1_mean": float(np.mean([f["macro_f1"] for f in scored])),
        "failed_folds": len(folds) - len(scored),
        "seconds": round(seconds, 1),
        "folds": folds,
    }


def run_sklearn(splits: list[Path], cache: Path) -> list[dict[str, Any]]:
    """Standardised logistic regression and linear SVM on the cached eGeMAPS functionals."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    candidates = {
        "egemaps + sklearn logistic regression": LogisticRegression(max_iter=5000),
        "egemaps + sklearn linear SVM": LinearSVC(max_iter=20000),
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
        results.append(summarise(name, folds, seconds=time.perf_counter() - started))
    return results


def _matrix(cache: FeatureCache, feature, utterances, prep: Preprocessing) -> np.ndarray:
    items = cache.get_many(feature, utterances, prep)
    return torch.stack([item.values for item in items]).numpy()


def table(results: list[dict[str, Any]]) -> str:
    """A Markdown table of the results."""
    lines = [
        "| model | pooled BCA | pooled accuracy | fold BCA mean +- sd | macro-F1 "
        "| failed folds | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['bca']:.3f} | {r['accuracy']:.3f} | "
            f"{r['fold_bca_mean']:.3f} +- {r['fold_bca_std']:.3f} | {r['macro_f1_mean']:.3f} | "
            f"{r['failed_folds']} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table, write JSON and Markdown beside the cache."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus-dir", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / "results/benchmarks/emodb-2s")
    parser.add_argument("--archs", nargs="*", default=list(ARCHITECTURES), choices=ARCHITECTURES)
    parser.add_argument("--epochs", type=int, default=LOGMEL["epochs"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training run")
    parser.add_argument("--no-egemaps", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not args.corpus_dir.is_dir():
        print(f"no corpus at {args.corpus_dir}; pass --corpus-dir", file=sys.stderr)
        return 2

    args.work_dir.mkdir(parents=True, exist_ok=True)
    manifest = prepare(args.corpus_dir, args.work_dir)
    folds = speaker_folds(manifest)
    splits = [
        fold_split(manifest, held_out, args.work_dir / f"split_fold{i}.csv")
        for i, held_out in enumerate(folds)
    ]
    cache = args.work_dir / "features"
    results = []
    if not args.no_egemaps:
        params = {**EGEMAPS, "threads": args.threads}
        results.append(run_trainer("egemaps + torch Linear (serhpo)", "egemaps", params, splits,
                                   cache))  # fmt: skip
        results += run_sklearn(splits, cache)
        print(table(results), flush=True)
    for arch in args.archs:
        params = {**LOGMEL, "arch": arch, "epochs": args.epochs, "threads": args.threads}
        results.append(run_trainer(f"logmel {arch}", "logmel", params, splits, cache))
        print(table(results[-1:]), flush=True)

    report = {
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        "protocol": "5 leave-two-speakers-out folds (one female, one male held out), fixed config",
        "folds": folds,
        "logmel_params": LOGMEL,
        "egemaps_params": EGEMAPS,
        "results": results,
    }
    (args.work_dir / "results.json").write_text(json.dumps(report, indent=2, default=str))
    markdown = table(results)
    (args.work_dir / "results.md").write_text(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
