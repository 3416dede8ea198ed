"""Retrain a study's best configuration on train + valid and save a self-contained model.

``serhpo retrain`` reads ``results/hpo/{engine}/best.yaml``, trains the configuration
on the development data (the split's ``train`` and ``valid`` parts together, a fixed
seed, no early stopping; the ``test`` part is never read here) and writes::

    results/final/{engine}/model/
        model.pt            the state dict (torch.load(..., weights_only=True))
        model.json          how to rebuild it: family, parameters, training keys, stage,
                            labels, preprocessing (sample rate, maxlen, padding, frozen
                            feature and its fingerprint), audio checks, provenance
        label_encoder.txt   the labels in output order (SpeechBrain's CategoricalEncoder format)
        backbone/           families with a backbone folder (wav2vec2; whisper with
                            backbone.dir): a copy of it, so that the model runs without the
                            original one; the embedded Whisper default is named (with its
                            checksum) in model.json's backbone_encoder instead
    results/final/{engine}/training.json
                            epochs, the last epoch's loss, seconds, the parameters used

:func:`load_final_model` reads such a folder back into a :class:`FinalModel`, which
labels waveforms without a feature cache; :func:`pretrained_final_model` wraps the
backbone's own IEMOCAP head (no tuning) the same way, for the zero-shot row.

Example:
    $ serhpo retrain --best results/hpo/optuna/best.yaml --split results/splits/emodb.csv \\
        --config config.yaml --model-dir results/final/optuna/model
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from serhpo.audio import AudioChecks, Loudness
from serhpo.config import add_config_arguments, read_stage_config
from serhpo.data import SAMPLE_RATE, FeatureItem, Preprocessing, Utterance, read_waveform
from serhpo.errors import UserError
from serhpo.features import FeatureCache
from serhpo.hpo.study_files import read_best
from serhpo.model_io import (
    METADATA_FILE,
    RETRAIN_HINT,
    audio_provenance,
    finite_or_none,
    load_model,
    save_model,
)
from serhpo.models.base import SERModel
from serhpo.objective import config_seed, training_data, trial_params
from serhpo.trainer import FitOutcome, fit, predict_logits, torch_settings
from serhpo.trial import TrialStatus

log = logging.getLogger(__name__)

#: The split parts the final model trains on; ``test`` is left for ``serhpo evaluate``.
FINAL_PARTS: tuple[str, ...] = ("train", "valid")

# ---------------------------------------------------------------- a trained model, ready to use


@dataclass
class FinalModel:
    """A trained model with its labels and the preprocessing it expects.

    Attributes:
        model: the trainable part, in eval mode, in its last training stage.
        labels: the class names in output order.
        preprocessing: the ``maxlen``/``padding`` the model was trained with.
        sample_rate: the rate waveforms must have (16 kHz).
        checks: the audio checks of its training data (config ``audio``).
        loudness: the level normalisation of its training data (config ``audio.loudness``),
            which ``serhpo predict`` applies to new recordings too.
        metadata: the folder's ``model.json`` (empty for the pretrained head).
        threads: torch CPU threads while scoring (``None``: torch's default); by default
            the training's ``threads``, since small models run several times faster on
            one thread than on two busy cores.
        directory: the model folder it was read from (the backbone folder for the
            pretrained head; ``None`` for a model built in memory), named in errors.

    Example:
        >>> final = load_final_model(Path("results/final/optuna/model"))  # doctest: +SKIP
        >>> final.probabilities([torch.zeros(16000)]).shape  # doctest: +SKIP
        torch.Size([1, 7])
    """

    model: SERModel
    labels: tuple[str, ...]
    preprocessing: Preprocessing
    sample_rate: int = SAMPLE_RATE
    checks: AudioChecks = field(default_factory=AudioChecks)
    metadata: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    loudness: Loudness = field(default_factory=Loudness)
    directory: Path | None = None

    @property
    def cache_name(self) -> str:
        """The backbone folder of this model's entries in a :class:`FeatureCache` (the family
        name, as the trials' cache uses; ``pretrained`` for the untuned head)."""
        return str(self.metadata.get("backbone") or self.metadata.get("model") or "model")

    def feature_items(
        self, utterances: Sequence[Utterance], *, cache: FeatureCache | None = None
    ) -> list[FeatureItem]:
        """The frozen features of prepared utterances, preprocessed as in training.

        With ``cache`` they are read from it, and the missing ones computed and stored
        there (the entries the trials use; their key holds the feature's fingerprint and
        the ``maxlen``/``padding`` variant, so models that preprocess differently get their
        own); without, they are computed in memory.

        Example:
            >>> items = final.feature_items(utterances, cache=FeatureCache(
            ...     Path("results/features"), backbone=final.cache_name))  # doctest: +SKIP
        """
        feature = self.model.frozen_feature(self.model.stage)
        with torch_settings(threads=self.threads):
            if cache is not None:
                return cache.get_many(feature, utterances, self.preprocessing)
            items: list[FeatureItem] = []
            for start in range(0, len(utterances), 8):  # bounded memory, as the cache computes
                prepared = [
                    self.preprocessing.apply(read_waveform(u.path))
                    for u in utterances[start : start + 8]
                ]
                with torch.inference_mode():
                    items += feature.compute_batch(
                        [waveform for waveform, _ in prepared],
                        valid_samples=[valid for _, valid in prepared],
                    )
            return items

    def logits_of_items(self, items: Sequence[FeatureItem], *, batch_size: int = 8) -> torch.Tensor:
        """Logits ``(len(items), len(labels))`` of frozen features (:meth:`feature_items`).

        Example:
            >>> final.logits_of_items(final.feature_items(utterances)).shape  # doctest: +SKIP
            torch.Size([12, 7])
        """
        if not items:
            return torch.empty(0, len(self.labels))
        with torch_settings(threads=self.threads):
            return predict_logits(
                self.model, items, stage=self.model.stage, batch_size=max(1, batch_size)
            )

    def logits(self, waveforms: Sequence[torch.Tensor], *, batch_size: int = 8) -> torch.Tensor:
        """Logits ``(len(waveforms), len(labels))`` of mono 16 kHz float32 waveforms.

        Each waveform is truncated (and padded) as in training, its frozen feature is
        computed in memory (no cache folder), and the model scores it in eval mode.

        Example:
            >>> final.logits([torch.randn(24000), torch.randn(40000)]).shape  # doctest: +SKIP
            torch.Size([2, 7])
        """
        stage = self.model.stage
        feature = self.model.frozen_feature(stage)
        outputs = []
        with torch_settings(threads=self.threads):
            for start in range(0, len(waveforms), batch_size):
                prepared = [
                    self.preprocessing.apply(w.float())
                    for w in waveforms[start : start + batch_size]
                ]
                with torch.inference_mode():
                    items = feature.compute_batch(
                        [waveform for waveform, _ in prepared],
                        valid_samples=[valid for _, valid in prepared],
                    )
                outputs.append(
                    predict_logits(self.model, items, stage=stage, batch_size=len(items))
                )
        if not outputs:
            return torch.empty(0, len(self.labels))
        return torch.cat(outputs)

    def probabilities(
        self, waveforms: Sequence[torch.Tensor], *, batch_size: int = 8
    ) -> torch.Tensor:
        """Class probabilities (softmax of :meth:`logits`), rows summing to 1.

        Example:
            >>> final.probabilities([torch.randn(24000)]).sum().item()  # doctest: +SKIP
            1.0
        """
        return torch.softmax(self.logits(waveforms, batch_size=batch_size), dim=1)

    def non_finite_error(self, *, where: str) -> UserError:
        """The error for scores that are NaN or infinite, naming the model and what to do.

        Example:
            >>> raise final.non_finite_error(where="2 of 5 files")  # doctest: +SKIP
        """
        folder = self.directory if self.directory is not None else "(built in memory)"
        return UserError(
            f"the model {folder} produced non-finite scores (NaN or infinite) for {where}; "
            "such scores carry no label. Expected finite logits: the model's weights have "
            "overflowed or diverged in training. Retrain it (serhpo retrain, or rerun the "
            "retrain_final rule, perhaps with a lower learning rate), or use another model "
            "folder."
        )

    @property
    def normalise(self) -> str:
        """The training's feature standardisation (``none``, ``corpus`` or ``speaker``).

        Features to score are standardised the same way, with their own statistics
        (:func:`serhpo.normalisation.normalise_items`); :meth:`logits` does not.
        """
        return str((self.metadata.get("training") or {}).get("normalise", "none"))


def load_final_model(directory: Path) -> FinalModel:
    """Load a model folder written by ``serhpo retrain`` (weights with ``weights_only=True``).

    Opening a model folder runs none of its contents: ``model.json`` is plain JSON, the
    weights are read with ``torch.load(..., weights_only=True)``, a wav2vec2 backbone is
    built by serhpo (:func:`serhpo.backbones.speechbrain_io.load_backbone`, its YAML never
    evaluated), and the backbone must lie inside the folder (or be the packaged default).

    Raises:
        UserError: when the folder is not such a model folder, or a file of it is missing,
            corrupt, of the wrong shape, or holds non-finite weights (the message names it).

    Example:
        >>> final = load_final_model(Path("results/final/optuna/model"))  # doctest: +SKIP
        >>> final.labels[:2]  # doctest: +SKIP
        ('anger', 'boredom')
    """
    directory = Path(directory)
    model, metadata = load_model(directory)
    preprocessing = metadata["preprocessing"]
    try:
        return FinalModel(
            model=model,
            labels=tuple(metadata["labels"]),
            preprocessing=Preprocessing(
                maxlen=preprocessing["maxlen"], padding=bool(preprocessing["padding"])
            ),
            sample_rate=int(preprocessing["sample_rate"]),
            checks=AudioChecks(**(metadata.get("audio_checks") or {})),
            metadata=metadata,
            threads=(metadata.get("training") or {}).get("threads"),
            loudness=Loudness(**(metadata.get("loudness") or {})),
            directory=directory,
        )
    except (TypeError, ValueError) as error:
        raise UserError(
            f"{directory / METADATA_FILE} has a bad preprocessing, audio_checks or loudness entry "
            f"({type(error).__name__}: {error}). {RETRAIN_HINT}"
        ) from None


def pretrained_final_model(
    backbone_dir: Path, *, maxlen: int | None = None, padding: bool = False
) -> FinalModel:
    """The backbone's own IEMOCAP head, untuned, with its labels mapped onto the targets.

    ``neu``, ``ang``, ``hap``, ``sad`` become ``neutral``, ``anger``, ``happiness``,
    ``sadness`` (:data:`serhpo.backbones.speechbrain_io.IEMOCAP_TO_TARGET`): the paper's
    zero-shot row. Utterances are scored whole unless ``maxlen`` is given.

    Example:
        >>> pretrained_final_model(Path("resources/models/wav2vec2")).labels  # doctest: +SKIP
        ('neutral', 'anger', 'happiness', 'sadness')
    """
    from serhpo.backbones.speechbrain_io import IEMOCAP_TO_TARGET
    from serhpo.models.wav2vec2 import pretrained_model

    model = pretrained_model(Path(backbone_dir))
    labels = tuple(IEMOCAP_TO_TARGET[label] for label in model.class_labels or ())
    return FinalModel(
        model=model,
        labels=labels,
        preprocessing=Preprocessing(maxlen=maxlen, padding=padding),
        metadata={"model": "pretrained", "backbone_dir": str(backbone_dir)},
        directory=Path(backbone_dir),
    )


# ---------------------------------------------------------------- retraining


def retrain(
    config: Mapping[str, Any],
    *,
    best: Mapping[str, Any],
    split_csv: Path,
    model_dir: Path,
    cache_dir: Path | None = None,
    backbone_dir: Path | None = None,
    seed: int | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """Train the best configuration on train + valid and save the model folder.

    Config ``model`` and ``training`` give the fixed keys; ``best["params"]`` overrides
    them. Only the split's ``train`` and ``valid`` rows are read (their audio through the
    feature cache); the ``test`` rows are not even checked for existence.

    Args:
        config: the merged configuration (``seed``, ``target_labels``, ``backbone``,
            ``model``, ``training``, ``features``, ``audio``).
        best: the study's best.yaml.
        split_csv: the tuning corpus' split CSV.
        model_dir: the model folder to write (replaced when it exists).
        cache_dir: the feature cache root; default config ``features.cache_dir``.
        backbone_dir: the pretrained model folder; default config ``backbone.dir``.
        seed: the training seed; default config ``seed``.
        root: the project root the CSV's paths are relative to (default: cwd).

    Returns:
        The training summary (what ``training.json`` holds).

    Raises:
        UserError: bad parameters, or a retraining that diverged.

    Example:
        >>> summary = retrain(config, best=read_best(Path("results/hpo/optuna/best.yaml")),
        ...     split_csv=Path("results/splits/emodb.csv"),
        ...     model_dir=Path("results/final/optuna/model"))  # doctest: +SKIP
        >>> summary["parts"]  # doctest: +SKIP
        ['train', 'valid']
    """
    seed = config_seed(config) if seed is None else seed
    params = trial_params(config, best["params"])
    data = training_data(
        config,
        split=split_csv,
        parts=FINAL_PARTS,
        cache_dir=cache_dir,
        backbone_dir=backbone_dir,
        root=root,
    )
    split = data.split
    log.info(
        "retraining %s's best trial %s (validation %s %.4f) on %s: %s",
        best["engine"],
        best["trial"],
        best["metric"],
        float(best["value"]),
        " + ".join(FINAL_PARTS),
        params,
    )
    outcome = fit(params, data, seed=seed, train_part=FINAL_PARTS, valid_part=None)
    if outcome.result.status == TrialStatus.FAILED:
        raise UserError(
            f"retraining the best {best['engine']} configuration (trial {best['trial']}) failed: "
            f"{outcome.result.reason}. The study scored it on train only; rerun with another "
            "--seed, or pick another configuration from the study's trials.csv."
        )
    utterances = [u for part in FINAL_PARTS for u in split.parts[part]]
    provenance = {
        "engine": best["engine"],
        "hpo": {key: best[key] for key in ("trial", "value", "metric")},
        "seed": seed,
        "trained_on": {
            "split": str(split_csv),
            "parts": list(FINAL_PARTS),
            "n": len(utterances),
        },
        **audio_provenance(config),
    }
    save_model(outcome, Path(model_dir), data=data, provenance=provenance)
    return _training_summary(
        best,
        outcome,
        params=params,
        backbone=data.backbone,
        seed=seed,
        utterances=utterances,
        model_dir=model_dir,
    )


def _training_summary(
    best: Mapping[str, Any],
    outcome: FitOutcome,
    *,
    params: Mapping[str, Any],
    backbone: str,
    seed: int,
    utterances: Sequence[Utterance],
    model_dir: Path,
) -> dict[str, Any]:
    """What training.json holds: the study's choice, the training run and its data."""
    extra = outcome.result.extra
    return {
        "engine": best["engine"],
        "trial": best["trial"],
        "hpo_value": float(best["value"]),
        "metric": best["metric"],
        "backbone": backbone,
        "seed": seed,
        "params": dict(best["params"]),
        "params_used": dict(params),
        "training": dataclasses.asdict(outcome.config),
        "model_params": outcome.model.params,
        "parts": list(FINAL_PARTS),
        "n_utterances": len(utterances),
        "per_label": dict(sorted(Counter(u.label for u in utterances).items())),
        "epochs": outcome.config.epochs,
        "stage": outcome.model.stage,
        "train_loss": finite_or_none(extra.get("train_loss")),
        "status": str(outcome.result.status),
        "seconds": extra.get("seconds"),
        "seconds_features": extra.get("seconds_features"),
        "seconds_train": extra.get("seconds_train"),
        "model_dir": str(model_dir),
    }


# ---------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo retrain``."""
    parser.add_argument(
        "--best", type=Path, required=True, help="the study's best.yaml (results/hpo/<engine>/)"
    )
    parser.add_argument(
        "--split", type=Path, required=True, help="the tuning corpus' split CSV (train + valid)"
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        required=True,
        help="model folder to write (results/final/<engine>/model)",
    )
    parser.add_argument(
        "--summary",
        type=Path,
        help="training summary JSON to write (default: training.json beside --model-dir)",
    )
    add_config_arguments(parser)
    parser.add_argument("--cache-dir", type=Path, help="feature cache root (default: config)")
    parser.add_argument("--backbone-dir", type=Path, help="the pretrained model's folder")
    parser.add_argument("--seed", type=int, help="overrides config seed")


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo retrain``: train, save the model folder, write training.json."""
    config = read_stage_config(args.config, args.config_json)
    best = read_best(args.best)
    summary = retrain(
        config,
        best=best,
        split_csv=args.split,
        model_dir=args.model_dir,
        cache_dir=args.cache_dir,
        backbone_dir=args.backbone_dir,
        seed=args.seed,
    )
    summary_path = args.summary or args.model_dir.parent / "training.json"
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    log.info(
        "saved %s (%d epochs, %.1f s); summary in %s",
        args.model_dir,
        summary["epochs"],
        summary["seconds"] or 0.0,
        summary_path,
    )
    return 0
