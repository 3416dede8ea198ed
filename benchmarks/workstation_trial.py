"""Time and memory of one trial of the paper's set-up (wav2vec2-base), on this machine.

Builds a wav2vec2 of wav2vec2-base's size (``Wav2Vec2Config()``, random weights: the cost is
the architecture's, not the knowledge's) in the SpeechBrain layout the pipeline loads, writes a
small synthetic EmoDB (1.5-4 s utterances, like EmoDB's), and runs one trial exactly as an
``hpo`` job does (:func:`serhpo.trainer.fit` on the feature cache) twice: ``cold`` (the trial
fills the cache, as the first trial of a study with that ``maxlen`` does) and ``warm`` (every
later one). It prints seconds per fine-tuning epoch and per training utterance, the process'
peak memory and, on a GPU, the peak GPU memory; scale them to your corpus (README, "Running the
paper's set-up on a workstation"). On a CPU it also prints the process' CPU seconds, which,
unlike wall-clock seconds, do not grow when other jobs share the cores (with --threads 1 they
are the wall-clock seconds of an otherwise idle core).

Usage:
    python benchmarks/workstation_trial.py                       # CPU, 2 threads
    python benchmarks/workstation_trial.py --device cuda         # training.device: cuda
    python benchmarks/workstation_trial.py --train 32 --valid 8 --epochs 5 --unfreeze 2
"""

from __future__ import annotations

import argparse
import datetime
import logging
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch
from transformers import Wav2Vec2Config
from trial_cost import make_corpus  # benchmarks/ is on sys.path when run as a script

from serhpo.backbones.tiny import build_random_backbone
from serhpo.data import load_split
from serhpo.features import FeatureCache
from serhpo.models.wav2vec2 import pretrained_encoder
from serhpo.trainer import TrainingData, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--train", type=int, default=12, help="training utterances (default: 12)")
    parser.add_argument("--valid", type=int, default=4, help="validation utterances (default: 4)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (default: 3)")
    parser.add_argument("--unfreeze", type=int, default=1, help="frozen epochs (default: 1)")
    parser.add_argument("--maxlen", type=int, default=80000, help="samples (default: 80000)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    params = {
        "lr": 1e-5,
        "epochs": args.epochs,
        "unfreeze": args.unfreeze,
        "maxlen": args.maxlen,
        "batch_size": 1,  # the paper's
        "device": args.device,
        "threads": args.threads,
        "collapse_after": None,
    }
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        backbone_dir = workdir / "wav2vec2-base-random"
        build_random_backbone(backbone_dir, config=Wav2Vec2Config())
        split = load_split(make_corpus(workdir, train=args.train, valid=args.valid, seed=0))
        started = time.perf_counter()
        pretrained_encoder(backbone_dir).backbone  # noqa: B018  # loaded once per job
        load_s = time.perf_counter() - started
        cache = FeatureCache(workdir / "cache", backbone="wav2vec2")
        data = TrainingData(
            split=split, cache=cache, backbone="wav2vec2", backbone_dir=backbone_dir
        )
        seconds, cpu_seconds = {}, {}
        for run in ("cold", "warm"):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            started, cpu_started = time.perf_counter(), time.process_time()
            outcome = fit(params, data, seed=0)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds[run] = time.perf_counter() - started
            cpu_seconds[run] = time.process_time() - cpu_started
            assert outcome.result.status == "complete", outcome.result.reason
    finetune_epochs = max(1, args.epochs - args.unfreeze)
    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    gpu = ""
    if args.device.startswith("cuda"):
        gpu = f", peak GPU memory {torch.cuda.max_memory_allocated() / 1024**3:.2f} GiB"
    print(
        f"{datetime.date.today()} {platform.machine()} {args.device} threads={args.threads}; "
        f"{args.train} train / {args.valid} valid utterances, epochs {args.epochs}, "
        f"unfreeze {args.unfreeze}, maxlen {args.maxlen}, batch 1; backbone load {load_s:.1f} s; "
        f"peak memory {peak_rss_gb:.2f} GiB{gpu}"
    )
    for name, measured in (("wall-clock", seconds), ("CPU", cpu_seconds)):
        per_epoch = measured["warm"] / finetune_epochs
        print(
            f"{name} seconds: trial cold {measured['cold']:.1f}, warm {measured['warm']:.1f}; "
            f"warm per fine-tuning epoch {per_epoch:.1f} = {per_epoch / args.train:.2f} per "
            "training utterance (its validation included)"
        )


if __name__ == "__main__":
    main()
