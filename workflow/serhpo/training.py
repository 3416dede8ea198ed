"""The training keys of a configuration, and ``serhpo train``: train one configuration.

:class:`TrainingConfig` holds the training keys (config ``training:`` and a trial's
parameters). The loop that trains with them is :mod:`serhpo.trainer`; building a stage's
data and objective from a config is :mod:`serhpo.objective`; model folders are
:mod:`serhpo.model_io`.

Example:
    $ serhpo train results/splits/emodb.csv --config config.yaml --param lr=1e-3 \\
        --param epochs=5 --model-dir /tmp/model
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from serhpo.config import add_config_arguments, coerce, read_stage_config, section_values
from serhpo.trial import TrialStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    """The training keys of a configuration (config ``training:`` and the HPO params).

    Defaults and ranges are the schema's: :func:`serhpo.config.settings` (a config) and
    :meth:`split_params` (a trial's params) fill and validate them; this class has neither.

    Attributes:
        lr: peak learning rate of AdamW.
        epochs: epochs to run.
        unfreeze: epochs with the encoder frozen before fine-tuning (two-stage families).
        maxlen: truncate utterances to this many samples (``None``: keep them whole).
        padding: zero-pad shorter utterances to ``maxlen`` (the paper: on).
        batch_size: utterances per optimiser step (the paper: 1).
        weight_decay: AdamW's decoupled weight decay.
        min_lr_ratio: the cosine schedule ends at ``lr * min_lr_ratio``.
        class_weights: weight the cross-entropy by inverse class frequency (off: the paper).
        grad_clip: clip the gradient norm to this (``None``: no clipping).
        collapse_after: from the epoch after this one, a trial whose validation
            predictions all fall in one class fails as collapsed (``None``: never).
        eval_batch_size: utterances per forward pass when scoring.
        device: ``cpu``, ``cuda`` or ``auto`` (``cuda`` when available).
        deterministic: ask torch for deterministic algorithms.
        threads: torch CPU threads while training (``None``: torch's default); small
            models train several times faster on 1 thread than on 2 busy cores.
        normalise: standardise the features per ``corpus`` or per ``speaker`` (each part
            with its own statistics, never labels; :mod:`serhpo.normalisation`), or ``none``.
    """

    lr: float
    epochs: int
    unfreeze: int
    maxlen: int | None
    padding: bool
    batch_size: int
    weight_decay: float
    min_lr_ratio: float
    class_weights: bool
    grad_clip: float | None
    collapse_after: int | None
    eval_batch_size: int
    device: str
    deterministic: bool
    threads: int | None
    normalise: str

    @classmethod
    def field_names(cls) -> set[str]:
        """The names of the training keys."""
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def split_params(cls, params: Mapping[str, Any]) -> tuple[TrainingConfig, dict[str, Any]]:
        """Separate training keys (completed and validated by the schema) from the family's.

        The keys not given get the schema's defaults (config ``training``); values are checked
        against its ranges, since a trial's come from the search space. HPO engines may hand
        over numpy scalars or floats for integers; they are converted.

        Raises:
            UserError: for a value of the wrong type or range.

        Example:
            >>> config, model_params = TrainingConfig.split_params({"lr": 1e-3, "arch": "cnn"})
            >>> config.lr, config.maxlen, model_params
            (0.001, 48000, {'arch': 'cnn'})
        """
        names = cls.field_names()
        values = section_values(
            "training",
            {k: v for k, v in params.items() if k in names},
            fix="Fix training: or search_space: in config.yaml.",
        )
        model_params = {k: coerce(v, {}) for k, v in params.items() if k not in names}
        return cls(**values), model_params

    def torch_device(self) -> torch.device:
        """The device to train on."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


# ---------------------------------------------------------------- CLI


def _param(text: str) -> tuple[str, Any]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo train``."""
    parser.add_argument("split_csv", type=Path, help="the split CSV (results/splits/{corpus}.csv)")
    add_config_arguments(parser)
    parser.add_argument(
        "--param",
        type=_param,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a training or model parameter, e.g. lr=1e-4 arch=cnn (repeatable; YAML values)",
    )
    parser.add_argument("--backbone", help="model family; overrides config backbone.name")
    parser.add_argument("--backbone-dir", type=Path, help="the pretrained model's folder")
    parser.add_argument(
        "--cache-dir", type=Path, help="feature cache root; overrides config features.cache_dir"
    )
    parser.add_argument("--seed", type=int, help="overrides config seed")
    parser.add_argument("--fold", type=int, help="validate on this fold of the split's folds")
    parser.add_argument("--output", type=Path, help="write the scores JSON here")
    parser.add_argument("--model-dir", type=Path, help="save the trained model here")


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo train``: train one configuration, print its validation scores as JSON."""
    # Imported here: these modules build on TrainingConfig above (a cycle at the top).
    from serhpo.model_io import audio_provenance, save_model
    from serhpo.objective import config_seed, training_data, trial_params
    from serhpo.trainer import fit

    config = read_stage_config(args.config, args.config_json)
    if args.backbone:
        config = {**config, "backbone": {**(config.get("backbone") or {}), "name": args.backbone}}
    data = training_data(
        config,
        split=args.split_csv,
        fold=args.fold,
        cache_dir=args.cache_dir,
        backbone_dir=args.backbone_dir,
    )
    seed = args.seed if args.seed is not None else config_seed(config)
    params = trial_params(config, dict(args.param))
    outcome = fit(params, data, seed=seed)
    result = dataclasses.asdict(outcome.result)
    result["value"] = None if math.isnan(result["value"]) else result["value"]  # valid JSON
    summary = {
        "backbone": data.backbone,
        "seed": seed,
        "params": params,
        **result,
        "scores": outcome.scores,
    }
    text = json.dumps(summary, indent=2, default=str)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    if args.model_dir:  # the folder serhpo retrain writes, which evaluate and predict read
        provenance = {
            "seed": seed,
            "trained_on": {"split": str(args.split_csv), "parts": ["train"], "fold": args.fold},
            **audio_provenance(config),
        }
        save_model(outcome, args.model_dir, data=data, provenance=provenance)
    return 0 if outcome.result.status != TrialStatus.FAILED else 1
