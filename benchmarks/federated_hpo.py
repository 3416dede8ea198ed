"""The reference study's grid against multi-objective engines, for federated SER.

The reference (FedAvg for SER) grid-searched learning rate, local epochs, global rounds,
batch size and client fraction, optimising accuracy and CPU time separately. Here the same
five hyper-parameters are tuned by the pipeline's own study (:func:`serhpo.hpo.study.run_study`
with :func:`serhpo.federated.objective.federated_objective`): the full grid, and with the
same space and a much smaller budget Optuna's multi-objective TPE, Optuna's NSGA-II and
random search, each searching validation BCA against the clients' training CPU seconds.

Data: real EmoDB (``../shared/corpora/emodb-2s/wav``, prepared by the pipeline) when present,
else the synthetic EmoDB; a speaker-independent split (train / valid / test speakers), each
training speaker a client. Family: eGeMAPS functionals + a linear layer (the features are
computed once, before any study). For every study the table gives the best validation BCA
and the trial that found it, and the cheapest configuration whose validation BCA is within
1 point (0.01) of that best, with its client CPU seconds and the trial that found it.

Usage (from the repository root):
    python benchmarks/federated_hpo.py --quick   # smoke run: a 4-point grid, 3 trials each
    python benchmarks/federated_hpo.py           # 72-point grid + 3 x 16 trials: ~40 min, 2 cores

The working folder (default benchmarks/output/federated_hpo, git-ignored) keeps the prepared
corpus and features; studies are rebuilt on every run. The table is printed and written to
benchmarks/federated_hpo.md (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from serhpo.corpora import get_format
from serhpo.corpora.synthetic import synthesize_corpus
from serhpo.federated.evaluate import COST, select_configurations
from serhpo.federated.objective import federated_objective
from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.hpo.study import run_study
from serhpo.prepare import prepare_corpus
from serhpo.splits import split_manifest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_EMODB = REPO_ROOT / ".." / "shared" / "corpora" / "emodb-2s" / "wav"
LABELS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]

#: The reference grid's five dimensions, scaled to a 2-core machine (72 points).
GRID_SPACE: dict[str, Any] = {
    "lr": {"type": "choice", "choices": [0.1, 0.01, 0.001]},
    "local_epochs": {"type": "choice", "choices": [1, 3, 5]},
    "rounds": {"type": "choice", "choices": [10, 30]},
    "batch_size": {"type": "choice", "choices": [8, 32]},
    "client_fraction": {"type": "choice", "choices": [0.25, 1.0]},
}
QUICK_SPACE: dict[str, Any] = {
    "lr": {"type": "choice", "choices": [0.1, 0.01]},
    "client_fraction": {"type": "choice", "choices": [0.5, 1.0]},
}
#: (label, engine, Optuna multi-objective sampler)
STUDIES = [
    ("grid (reference)", "grid", "tpe"),
    ("optuna MO-TPE", "optuna", "tpe"),
    ("optuna NSGA-II", "optuna", "nsga2"),
    ("random", "random", "tpe"),
]


def prepare_split(work_dir: Path, *, real: bool) -> Path:
    """Prepare the corpus once and write a speaker-independent split; return its CSV."""
    split_csv = work_dir / "split.csv"
    if split_csv.is_file():
        return split_csv
    raw = REAL_EMODB
    if not real:
        raw = work_dir / "raw"
        synthesize_corpus("emodb", raw, n_speakers=10, utterances_per_speaker_label=4, seed=0)
    prepared = prepare_corpus(
        corpus="emodb", fmt=get_format("emodb"), raw_dir=raw, out_dir=work_dir / "16k",
        target_labels=LABELS, threads=2,
    )  # fmt: skip
    split = split_manifest(
        prepared.manifest, strategy="speaker", test_fraction=0.2, valid_fraction=0.2, seed=0
    )
    split.to_csv(split_csv, index=False)
    return split_csv


def run(args: argparse.Namespace) -> pd.DataFrame:
    real = REAL_EMODB.is_dir() and not args.synthetic
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    split_csv = prepare_split(work / ("emodb" if real else "synthetic"), real=real)
    space_config = QUICK_SPACE if args.quick else GRID_SPACE
    space = SearchSpace.from_config(space_config)
    config = {
        "seed": 0,
        "target_labels": LABELS,
        "features": {"cache_dir": str(work / "features")},
        "federated": {
            "backbone": "egemaps",
            "training": {"maxlen": None, "threads": 1, "rounds": 3 if args.quick else 10},
            "simulation": {"num_cpus": 2},
        },
    }
    rows = []
    for label, engine, sampler in STUDIES:
        out = work / "studies" / label.split()[0].lower() / sampler
        shutil.rmtree(out, ignore_errors=True)
        budget = None if engine == "grid" else (3 if args.quick else args.trials)
        hpo = {
            "n_trials": budget,
            "n_startup_trials": args.startup,
            "multi_objective": {
                "enabled": True,
                "sampler": sampler,
                "population_size": 8,
                "cost": COST,
            },
        }
        settings = HpoSettings.from_config({**config, "hpo": hpo}, engine=engine)
        objective = federated_objective(config, split_csv=split_csv)
        started = time.perf_counter()
        outcome = run_study(space, objective, settings, out_dir=out)
        minutes = (time.perf_counter() - started) / 60
        chosen = select_configurations(outcome.trials, margin=0.01)
        best, cheap = chosen["best"], chosen["efficient"]
        rows.append(
            {
                "study": label,
                "trials": len(outcome.trials),
                "best valid BCA": round(best.value, 3),
                "best found at trial": best.trial + 1,
                "best CPU s": round(best.cost(COST), 2),
                "cheapest within 1 pt: BCA": round(cheap.value, 3),
                "its CPU s": round(cheap.cost(COST), 2),
                "found at trial": cheap.trial + 1,
                "its params": ", ".join(f"{k}={v}" for k, v in cheap.params.items()),
                "client CPU s, whole study": round(
                    sum(t.cost(COST) for t in outcome.trials if math.isfinite(t.cost(COST))), 1
                ),
                "study minutes": round(minutes, 1),
            }
        )
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 4-point grid, 3 trials each")
    parser.add_argument("--synthetic", action="store_true", help="the synthetic EmoDB")
    parser.add_argument("--trials", type=int, default=16, help="budget of the non-grid studies")
    parser.add_argument("--startup", type=int, default=6, help="Optuna's random start-up trials")
    parser.add_argument(
        "--work-dir", type=Path, default=REPO_ROOT / "benchmarks/output/federated_hpo"
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/federated_hpo.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    table = run(args)
    header = [
        "# Federated SER: the reference grid against multi-objective engines",
        "",
        f"- command: `{' '.join(['python benchmarks/federated_hpo.py', *sys.argv[1:]])}`",
        f"- date: {datetime.date.today().isoformat()}; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}",
        "- data: "
        + (
            "real EmoDB (emodb-2s copy), speaker-independent split"
            if REAL_EMODB.is_dir() and not args.synthetic
            else "synthetic EmoDB, speaker-independent split"
        )
        + "; family eGeMAPS + linear layer; each training speaker a client; seed 0",
        "- CPU s: the clients' training CPU seconds of one trial (FedAvg rounds x sampled "
        "clients x local epochs); study minutes include Flower/Ray start-up (~7 s a trial)",
        "",
        table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False),
        "",
    ]
    text = "\n".join(header)
    print(text)
    if not args.quick:
        args.out.write_text(text)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
