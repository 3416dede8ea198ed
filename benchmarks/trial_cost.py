"""What one HPO trial of the paper costs: a naive implementation against serhpo's trainer.

The naive trial is the paper's loop written plainly: every epoch it decodes each file,
truncates and zero-pads it to ``maxlen``, runs the whole wav2vec2 (padding frames
included) and the head with batch size 1, and scores the validation part the same way.
serhpo's trial is :func:`serhpo.trainer.fit` on the feature cache: the frozen epochs
train the Linear layer on cached pooled encoder outputs, the fine-tuning epochs start
from cached conv features and skip the padding frames.

Both build the same model from the same seed, see the data in the same order and
apply the same optimiser and schedule; their arithmetic differs only in float
rounding (trimmed padding, batched validation), so their validation BCA should agree.

serhpo is timed twice per configuration: ``cold`` (empty cache: this trial computes
the features) and ``warm`` (the cache filled by an earlier trial of the study, as for
every later trial with that ``maxlen``). Loading the backbone once per process is
excluded from both and printed separately.

Usage:
    python benchmarks/trial_cost.py --quick          # tiny model + 2 base-size configs
    python benchmarks/trial_cost.py                  # the full table (about 15 min, 2 cores)
    python benchmarks/trial_cost.py --models tiny --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import math
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from serhpo.backbones.tiny import build_random_backbone, build_tiny_backbone
from serhpo.corpora.synthetic import synthesize_corpus
from serhpo.data import Preprocessing, SplitData, batches, load_split, read_waveform
from serhpo.features import FeatureCache
from serhpo.metrics import balanced_accuracy
from serhpo.models import build_model
from serhpo.models.base import masked_mean
from serhpo.models.wav2vec2 import (
    FROZEN_STAGE,
    conv_features,
    encode_conv_features,
    pretrained_encoder,
)
from serhpo.trainer import TrainingData, fit, seed_everything

log = logging.getLogger("trial_cost")

#: The paper's Table 4 (best configuration per engine) and frozen-heavy configurations.
TABLE4 = [
    ("Optuna (T4)", {"lr": 8.89e-6, "epochs": 4, "unfreeze": 1, "maxlen": 64000}),
    ("Hyperopt (T4)", {"lr": 2.59e-5, "epochs": 8, "unfreeze": 4, "maxlen": 80000}),
    ("Ax (T4)", {"lr": 2.28e-5, "epochs": 9, "unfreeze": 0, "maxlen": 80000}),
]
FROZEN_HEAVY = [
    ("never unfrozen", {"lr": 1e-3, "epochs": 10, "unfreeze": 10, "maxlen": 80000}),
    ("unfreeze 8", {"lr": 1e-4, "epochs": 10, "unfreeze": 8, "maxlen": 80000}),
]


@dataclass
class Row:
    model: str
    name: str
    params: dict
    naive_s: float
    cold_s: float
    warm_s: float
    naive_bca: float
    serhpo_bca: float


def make_corpus(workdir: Path, *, train: int, valid: int, seed: int) -> Path:
    """A synthetic EmoDB (16 kHz mono, 1.5-4 s like EmoDB's typical files) and a split CSV."""
    files = synthesize_corpus(
        "emodb",
        workdir / "corpus",
        n_speakers=4,
        utterances_per_speaker_label=max(1, math.ceil((train + valid) / 28)),
        seed=seed,
        duration_s=(1.5, 4.0),
    )
    files = files.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    files = files.iloc[: train + valid].copy()
    files["utterance_id"] = [Path(path).stem for path in files["path"]]
    files["corpus"] = "synthetic_emodb"
    files["part"] = ["train"] * train + ["valid"] * valid
    split_csv = workdir / "split.csv"
    pd.DataFrame(files).to_csv(split_csv, index=False)
    return split_csv


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """The trainer's setting (serhpo.trainer), for the naive loop too."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=True)


def naive_trial(params: dict, split: SplitData, *, family: str, backbone_dir: Path, seed: int):
    """The paper's trial without a cache; returns (seconds, validation BCA per epoch)."""
    started = time.perf_counter()
    with deterministic():
        history = _naive_trial(params, split, family=family, backbone_dir=backbone_dir, seed=seed)
    return time.perf_counter() - started, history


def _naive_logits(model, path: Path, preprocessing: Preprocessing, *, stage: str, grad: bool):
    waveform, valid = preprocessing.apply(read_waveform(path))  # decoded again every epoch
    encoder = model.encoder
    normalize = model._pretrained.normalize_wav
    output_norm = model._pretrained.output_norm
    valid = torch.tensor([valid])
    frozen = stage == FROZEN_STAGE or not grad
    with torch.no_grad() if frozen else contextlib.nullcontext():
        features, frames = conv_features(encoder, waveform[None], valid, normalize=normalize)
        hidden = encode_conv_features(
            encoder, features, frames, output_norm=output_norm, trim=False
        )
        pooled = masked_mean(hidden, frames)
    return model.head(pooled)


def _naive_trial(params: dict, split: SplitData, *, family: str, backbone_dir: Path, seed: int):
    lr, epochs, unfreeze = params["lr"], params["epochs"], params["unfreeze"]
    preprocessing = Preprocessing(maxlen=params["maxlen"], padding=True)
    # The same construction order as serhpo.trainer.fit, so both draw the same numbers.
    seed_everything(seed)
    model = build_model(family, num_classes=len(split.labels), params={}, backbone_dir=backbone_dir)
    trainable = {id(p): p for s in model.stages for p in model.trainable_parameters(s)}
    optimizer = torch.optim.AdamW(list(trainable.values()), lr=lr, weight_decay=0.01)
    train = split.parts["train"]
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(train))
    loss_function = torch.nn.CrossEntropyLoss()
    order = torch.Generator().manual_seed(seed)
    targets = torch.as_tensor(split.targets("train"))
    history = []
    for epoch in range(1, epochs + 1):
        stage = model.stage_for_epoch(epoch, unfreeze=unfreeze)
        model.set_stage(stage)
        model.train()
        if stage == FROZEN_STAGE:
            model.encoder.eval()  # a frozen encoder: no dropout, as SpeechBrain's freeze
        for indices in batches(len(train), batch_size=1, shuffle=True, generator=order):
            logits = _naive_logits(
                model, train[indices[0]].path, preprocessing, stage=stage, grad=True
            )
            loss = loss_function(logits, targets[indices])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        model.eval()
        with torch.no_grad():
            predictions = [
                int(_naive_logits(model, u.path, preprocessing, stage=stage, grad=False).argmax())
                for u in split.parts["valid"]
            ]
        history.append(balanced_accuracy(split.targets("valid"), np.array(predictions)))
    return history


def serhpo_trial(params: dict, data: TrainingData, *, seed: int):
    """serhpo's trial (the trainer on the cache); returns (seconds, BCA per epoch)."""
    started = time.perf_counter()
    outcome = fit({**params, "collapse_after": None}, data, seed=seed)
    return time.perf_counter() - started, outcome.result.history


def run_model(
    model_name: str,
    backbone_dir: Path,
    split_csv: Path,
    configs: list,
    *,
    workdir: Path,
    seed: int,
) -> list[Row]:
    family = "tiny_wav2vec2" if model_name == "tiny" else "wav2vec2"
    split = load_split(split_csv)
    started = time.perf_counter()
    pretrained_encoder(backbone_dir).backbone  # noqa: B018  # load once, outside the timings
    log.info("%s: backbone loaded in %.1f s", model_name, time.perf_counter() - started)
    rows = []
    for index, (name, params) in enumerate(configs):
        cache = FeatureCache(workdir / f"cache-{model_name}-{index}", backbone=family)
        data = TrainingData(split=split, cache=cache, backbone=family, backbone_dir=backbone_dir)
        naive_s, naive_history = naive_trial(
            params, split, family=family, backbone_dir=backbone_dir, seed=seed
        )
        cold_s, cold_history = serhpo_trial(params, data, seed=seed)
        warm_s, warm_history = serhpo_trial(params, data, seed=seed)
        row = Row(
            model=model_name,
            name=name,
            params=params,
            naive_s=naive_s,
            cold_s=cold_s,
            warm_s=warm_s,
            naive_bca=naive_history[-1],
            serhpo_bca=warm_history[-1],
        )
        log.info(
            "%s %s: naive %.1f s, serhpo cold %.1f s, warm %.2f s; BCA %s / %s",
            model_name,
            name,
            naive_s,
            cold_s,
            warm_s,
            [round(b, 3) for b in naive_history],
            [round(b, 3) for b in warm_history],
        )
        rows.append(row)
    return rows


def scaled(configs: list, *, epochs_factor: float) -> list:
    """The same configurations with fewer epochs (and the same frozen share)."""
    result = []
    for name, params in configs:
        # Halves round up, so a short frozen stage (Optuna's 1 epoch) survives the scaling.
        epochs = max(1, math.floor(params["epochs"] * epochs_factor + 0.5))
        unfreeze = min(epochs, math.floor(params["unfreeze"] * epochs_factor + 0.5))
        label = f"{name} x{epochs_factor:g} epochs" if epochs != params["epochs"] else name
        result.append((label, {**params, "epochs": epochs, "unfreeze": unfreeze}))
    return result


def table(rows: list[Row]) -> str:
    lines = [
        "| model | configuration | lr | epochs | unfreeze | maxlen | naive s | serhpo cold s "
        "| serhpo warm s | naive/warm | naive/cold | BCA naive | BCA serhpo |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = r.params
        lines.append(
            f"| {r.model} | {r.name} | {p['lr']:g} | {p['epochs']} | {p['unfreeze']} "
            f"| {p['maxlen']} | {r.naive_s:.1f} | {r.cold_s:.1f} | {r.warm_s:.2f} "
            f"| {r.naive_s / r.warm_s:.1f}x | {r.naive_s / r.cold_s:.1f}x "
            f"| {r.naive_bca:.3f} | {r.serhpo_bca:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer utterances and configs")
    parser.add_argument("--models", nargs="+", default=["tiny", "base"], choices=["tiny", "base"])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the corpus, backbones and caches here")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("speechbrain").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)

    with contextlib.ExitStack() as stack:
        if args.workdir:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="trial_cost-")))
        started = time.perf_counter()
        rows: list[Row] = []
        setup = []
        if "tiny" in args.models:
            train, valid = (16, 8) if args.quick else (24, 12)
            split_csv = make_corpus(workdir / "tiny", train=train, valid=valid, seed=args.seed)
            backbone = workdir / "tiny" / "backbone"
            build_tiny_backbone(backbone, seed=args.seed)
            configs = TABLE4 + FROZEN_HEAVY
            rows += run_model("tiny", backbone, split_csv, configs, workdir=workdir, seed=args.seed)
            setup.append(f"tiny: {train} train / {valid} valid utterances, paper epochs")
        if "base" in args.models:
            from transformers import Wav2Vec2Config

            train, valid = (4, 2) if args.quick else (8, 4)
            split_csv = make_corpus(workdir / "base", train=train, valid=valid, seed=args.seed)
            backbone = workdir / "base" / "backbone"
            build_random_backbone(backbone, config=Wav2Vec2Config(), seed=args.seed, kind="base")
            if args.quick:
                configs = scaled([TABLE4[1], FROZEN_HEAVY[0]], epochs_factor=0.5)
            else:
                configs = scaled(TABLE4, epochs_factor=0.5) + scaled(
                    FROZEN_HEAVY, epochs_factor=0.5
                )
            rows += run_model("base", backbone, split_csv, configs, workdir=workdir, seed=args.seed)
            setup.append(f"base: {train} train / {valid} valid utterances, epochs halved")

    header = (
        f"trial_cost.py {'--quick ' if args.quick else ''}--models {' '.join(args.models)} "
        f"--threads {args.threads}; {datetime.date.today()}; {platform.machine()} "
        f"{os.cpu_count()} cores, torch {torch.__version__}; "
        f"{'; '.join(setup)}; total {time.perf_counter() - started:.0f} s"
    )
    text = f"{header}\n\n{table(rows)}\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
