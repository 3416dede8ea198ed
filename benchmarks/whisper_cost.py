"""Benchmark: what the whisper family costs on the CPU, per window and per trial.

1. Embedding: seconds to compute the cached feature (every hidden state, mean and std over
   audio frames) of the first ``--n-embed`` utterances of the shared EmoDB copy, per window
   (``30s``: padded as Whisper was trained; ``utterance``: unpadded), through the feature
   cache as the pipeline does (``FeatureCache.get_many``), torch on ``--threads`` threads.
2. Trials: with the ``utterance`` window cached for all utterances, seconds per trial of
   ``serhpo.trainer.fit`` for each head (and a two-stage fine-tuning of the top layer, whose
   epochs recompute the encoder from the cached log-Mel), on one speaker split (two held-out
   speakers, one female and one male, are the scored part). The BCA printed is that one
   split's: a cost benchmark, not the LOSO result (benchmarks/realdata_emodb.py).

3. With ``--loso``: a check of the features, not a tuned result: fixed configurations
   scored leave-one-speaker-out (10 folds, confusions pooled) with the ``utterance`` window.
   Some of them were picked after seeing these numbers, so they are not an honest estimate
   (the nested protocol is benchmarks/realdata_emodb.py's).

Run from the repository root (a second run reads the cache: delete the work folder first)::

    OMP_NUM_THREADS=1 python benchmarks/whisper_cost.py --n-embed 50 --threads 1 --loso
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from serhpo.corpora import get_format
from serhpo.data import Preprocessing, load_split
from serhpo.features import FeatureCache
from serhpo.models.whisper import WhisperLayersFeature
from serhpo.prepare import prepare_corpus
from serhpo.trainer import TrainingData, fit

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO_ROOT / ".." / "shared" / "corpora" / "emodb-2s" / "wav"
LABELS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
HEADS = {
    "logreg": {"head": "logreg", "C": 0.1, "layer": 3},
    "svm": {"head": "svm", "C": 0.01, "layer": 3},
    "linear": {"head": "linear", "layer": "weighted", "lr": 3e-3, "epochs": 20, "batch_size": 16},
    # two stages: 2 epochs of the head on cached vectors, then 2 fine-tuning the top layer
    "finetune top 1": {
        "head": "linear",
        "layer": "weighted",
        "finetune_layers": 1,
        "lr": 1e-3,
        "epochs": 4,
        "unfreeze": 2,
        "batch_size": 8,
    },
}
HELD_OUT = ["03", "08"]  # one male, one female speaker
LOSO: dict[str, dict] = {
    "logreg C 0.1, layer 4 (last)": {"head": "logreg", "C": 0.1, "layer": 4},
    "logreg C 0.1, layer 3": {"head": "logreg", "C": 0.1, "layer": 3},
    "logreg C 0.1, layer 2": {"head": "logreg", "C": 0.1, "layer": 2},
    "logreg C 0.1, layer 3, normalise speaker": {
        "head": "logreg", "C": 0.1, "layer": 3, "normalise": "speaker"
    },
    "logreg C 0.1, mean of layers 1-4, normalise speaker": {
        "head": "logreg", "C": 0.1, "layer": "mean", "normalise": "speaker"
    },
}  # fmt: skip


def loso(manifest: pd.DataFrame, work: Path, cache: FeatureCache, params: dict) -> float:
    """BCA of ``params`` leave-one-speaker-out, confusions pooled over the folds."""
    total = np.zeros((len(LABELS), len(LABELS)))
    for speaker in sorted(manifest["speaker"].unique()):
        path = work / f"loso-{speaker}.csv"
        manifest.assign(part=np.where(manifest["speaker"] == speaker, "valid", "train")).to_csv(
            path, index=False
        )
        data = TrainingData(
            split=load_split(path, labels=LABELS, root=REPO_ROOT), cache=cache, backbone="whisper"
        )
        outcome = fit({**params, "window": "utterance", "maxlen": None}, data)
        total += np.array(outcome.scores["confusion"])
    return float((np.diag(total) / total.sum(axis=1)).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / "results/benchmarks/whisper")
    parser.add_argument("--n-embed", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="delete the feature cache first")
    parser.add_argument("--loso", action="store_true", help="also the LOSO check of the features")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = args.work_dir
    if args.fresh and (work / "features").exists():
        shutil.rmtree(work / "features")
    manifest_path = work / "manifest.csv"
    if not manifest_path.is_file():
        prepared = prepare_corpus(
            corpus="emodb", fmt=get_format("emodb"), raw_dir=args.corpus,
            out_dir=work / "16k", target_labels=LABELS, threads=2,
        )  # fmt: skip
        prepared.manifest.to_csv(manifest_path, index=False)
    manifest = pd.read_csv(manifest_path, dtype={"speaker": str, "utterance_id": str})
    rows = manifest[manifest["label"].fillna("") != ""]
    rows = rows.assign(part=np.where(rows["speaker"].isin(HELD_OUT), "valid", "train"))
    split_csv = work / "split.csv"
    rows.to_csv(split_csv, index=False)
    split = load_split(split_csv, labels=LABELS, root=REPO_ROOT)
    utterances = split.parts["train"] + split.parts["valid"]
    cache = FeatureCache(work / "features", backbone="whisper", progress=True)
    report: dict = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        "threads": args.threads,
        "embedding": {},
        "trials": {},
    }
    subset = sorted(utterances, key=lambda u: u.utterance_id)[: args.n_embed]
    for window in ("utterance", "30s"):
        feature = WhisperLayersFeature(None, window=window)
        feature.fingerprint()  # the model checksum, once (not an embedding cost)
        before, started = cache.stats.computed, time.perf_counter()
        cache.get_many(feature, subset, Preprocessing(maxlen=None))
        seconds = time.perf_counter() - started
        report["embedding"][window] = {
            "utterances": len(subset),
            "computed": cache.stats.computed - before,
            "seconds": round(seconds, 1),
            "seconds_per_utterance": round(seconds / max(len(subset), 1), 3),
            "mean_duration_s": round(float(np.mean([u.num_samples for u in subset])) / 16000, 2),
        }
        print(window, report["embedding"][window], flush=True)
    data = TrainingData(split=split, cache=cache, backbone="whisper")
    fit({**HEADS["logreg"], "window": "utterance", "maxlen": None}, data)  # cache all of them
    for name, params in HEADS.items():
        for normalise in ("none",) if "finetune_layers" in params else ("none", "speaker"):
            started = time.perf_counter()
            outcome = fit(
                {**params, "window": "utterance", "maxlen": None, "normalise": normalise}, data
            )
            report["trials"][f"{name}, normalise {normalise}"] = {
                "seconds": round(time.perf_counter() - started, 2),
                "bca_one_split": round(outcome.result.value, 3),
                "train": len(split.parts["train"]),
                "valid": len(split.parts["valid"]),
            }
            print(name, normalise, report["trials"][f"{name}, normalise {normalise}"], flush=True)
    if args.loso:
        report["loso_check"] = {}
        for name, params in LOSO.items():
            started = time.perf_counter()
            bca = loso(rows, work, cache, params)
            report["loso_check"][name] = {
                "bca": round(bca, 3),
                "seconds": round(time.perf_counter() - started, 1),
            }
            print(name, report["loso_check"][name], flush=True)
    print(json.dumps(report, indent=2))
    (work / "whisper_cost.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
