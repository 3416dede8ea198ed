"""Benchmark: zero-shot from real EmoDB to the real RAVDESS actors, through the feature cache.

Data: ``../shared/corpora/emodb-2s/wav`` (all 535 EmoDB utterances, a third-party copy at
22,050 Hz cut to 2.0 s) and ``../shared/corpora/ravdess-sample`` (RAVDESS actors 1 and 2,
120 original speech files, 48 kHz), both prepared by the pipeline's own ``prepare_corpus``
(RAVDESS with its default label map: calm -> neutral, surprised dropped), once without and
once with loudness normalisation (``audio.loudness``: -23 LUFS, peak limit -1 dBFS).

Models: the eGeMAPS family (a standardised linear head on the 88 functionals), retrained by
``serhpo.final.retrain`` on a speaker split of EmoDB (train + valid) with two fixed
configurations that share the frozen feature (they differ in learning rate), so the
second evaluation of each corpus reads every entry the first one wrote.

Reported per model and corpus: the shared-label score (``evaluation.zero_shot_labels:
shared``: RAVDESS holds six of the seven EmoDB labels, boredom is masked), its chance
level, the unrestricted score (seven-way argmax), the cache entries read / computed and the
evaluation's seconds.

Run from the repository root::

    python benchmarks/zero_shot_ravdess.py --out benchmarks/zero_shot_ravdess.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from serhpo.audio import Loudness
from serhpo.corpora import get_format
from serhpo.evaluation import evaluate
from serhpo.features import FeatureCache
from serhpo.final import load_final_model, retrain
from serhpo.prepare import prepare_corpus
from serhpo.splits import split_manifest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT / ".." / "shared" / "corpora"
LABELS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
CONFIGS = {"lr 1e-2": {"lr": 1e-2, "epochs": 30}, "lr 3e-3": {"lr": 3e-3, "epochs": 30}}


def prepare(work: Path, corpus: str, raw: Path, loudness: Loudness) -> Path:
    """Prepare and split one corpus; return its split CSV."""
    tag = "loud" if loudness.enabled else "plain"
    fmt = get_format(corpus)
    prepared = prepare_corpus(
        corpus=corpus,
        fmt=fmt,
        raw_dir=raw,
        out_dir=work / tag / corpus / "16k",
        target_labels=LABELS,
        loudness=loudness,
        threads=2,
    )
    role = "tune" if corpus == "emodb" else "zero_shot"
    split = split_manifest(prepared.manifest, strategy="speaker", seed=0, role=role)
    path = work / tag / f"{corpus}.csv"
    split.to_csv(path, index=False)
    return path


def run(work: Path) -> list[dict[str, Any]]:
    rows = []
    for loudness in (Loudness(), Loudness(enabled=True, target_lufs=-23.0)):
        emodb = prepare(work, "emodb", SHARED / "emodb-2s" / "wav", loudness)
        ravdess = prepare(work, "ravdess", SHARED / "ravdess-sample", loudness)
        tag = "loud" if loudness.enabled else "plain"
        cache_dir = work / tag / "features"
        config = {
            "seed": 0,
            "target_labels": LABELS,
            "backbone": {"name": "egemaps"},
            "training": {"batch_size": 32, "threads": 1, "maxlen": None},
        }
        for name, params in CONFIGS.items():
            model_dir = work / tag / "final" / name.replace(" ", "_") / "model"
            best = {"engine": name, "trial": 0, "value": 0.0, "metric": "bca", "params": params}
            retrain(config, best=best, split_csv=emodb, model_dir=model_dir, cache_dir=cache_dir)
            for corpus, split_csv, role in (
                ("emodb", emodb, "tune"),
                ("ravdess", ravdess, "zero_shot"),
            ):
                final = load_final_model(model_dir)
                cache = FeatureCache(cache_dir, backbone=final.cache_name, memory_bytes=0)
                start = time.perf_counter()
                result = evaluate(
                    final, split_csv=split_csv, model_name=name, role=role, protocol="speaker",
                    target_labels=LABELS, resamples=1000, cache=cache,
                    audio={"loudness": {"enabled": loudness.enabled, "target_lufs": -23,
                                        "peak_dbfs": -1}},
                )  # fmt: skip
                seconds = time.perf_counter() - start
                unrestricted = result["unrestricted"] or {}
                rows.append(
                    {
                        "loudness": result["loudness"],
                        "model": name,
                        "corpus": corpus,
                        "label_set": result["label_set"],
                        "n": result["n"],
                        "bca": result["bca"],
                        "ci": result["bca_ci95"],
                        "chance": result["chance"],
                        "unrestricted": unrestricted.get("bca"),
                        "read": result["features"]["read"],
                        "computed": result["features"]["computed"],
                        "seconds": seconds,
                    }
                )
                print(rows[-1], flush=True)
    return rows


def markdown(rows: list[dict[str, Any]], *, command: str, seconds: float) -> str:
    lines = [
        "# Zero-shot EmoDB -> RAVDESS actors 1-2 through the feature cache",
        "",
        f"`{command}` ({datetime.date.today()}, {seconds:.0f} s, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, 1 torch thread).",
        "",
        "| loudness | model | corpus | labels | n | BCA [95 % CI] | chance | 7-way BCA | "
        "entries read / computed | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        unrestricted = "—" if r["unrestricted"] is None else f"{r['unrestricted']:.3f}"
        lines.append(
            f"| {r['loudness']} | {r['model']} | {r['corpus']} | {r['label_set']} | {r['n']} | "
            f"{r['bca']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | {r['chance']:.3f} | "
            f"{unrestricted} | {r['read']} / {r['computed']} | {r['seconds']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "results" / "bench_zero_shot")
    parser.add_argument("--out", type=Path, help="write the Markdown table here")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"{SHARED} is not here: nothing to measure", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = run(args.work)
    text = markdown(
        rows, command="python benchmarks/zero_shot_ravdess.py", seconds=time.perf_counter() - start
    )
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
