"""A tiny wav2vec2 with random weights, in the SpeechBrain IEMOCAP classifier's layout.

It has exactly the layout of ``speechbrain/emotion-recognition-wav2vec2-IEMOCAP``
(``EncoderClassifier.from_hparams`` loads it: SpeechBrain's wav2vec2 wrapper, the
pretrainer, the label encoder; serhpo builds the same modules itself with
:func:`~serhpo.backbones.speechbrain_io.load_backbone`), offline and in milliseconds, for
the demo profile and the tests.
Its numbers mean nothing about emotion; its cost and plumbing are those of the real one.

Like the real model, the folder holds "base" weights in ``wav2vec2/`` (here: random)
and different "fine-tuned" weights in ``wav2vec2.ckpt`` (here: the base ones plus
seeded noise), which SpeechBrain loads over the base ones.

Example:
    $ serhpo build-tiny-backbone resources/models/tiny_wav2vec2 --seed 0
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from serhpo.backbones.speechbrain_io import (
    IEMOCAP_LABELS,
    WAV2VEC2_SUBDIR,
    render_hyperparams,
    write_checksum,
    write_label_encoder,
)

log = logging.getLogger(__name__)

#: Standard deviation of the seeded noise that makes the "fine-tuned" weights differ.
_FINETUNE_NOISE = 0.02


def tiny_wav2vec2_config(
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    conv_channels: int = 16,
) -> object:
    """A ``transformers.Wav2Vec2Config`` with wav2vec2-base's layout at a tiny width.

    The convolutional feature extractor keeps wav2vec2-base's kernels and strides
    (one frame per 20 ms at 16 kHz), so frame counts match the real model's.

    Example:
        >>> tiny_wav2vec2_config(hidden_size=32).num_hidden_layers
        2
    """
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=2 * hidden_size,
        conv_dim=(conv_channels,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        vocab_size=8,
    )


def build_tiny_backbone(
    out: Path,
    *,
    seed: int = 0,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    conv_channels: int = 16,
) -> str:
    """Write a tiny random wav2vec2 SpeechBrain emotion classifier into ``out``.

    The same arguments give byte-identical weights (and the same checksum).

    Args:
        out: the backbone folder to write (created; known files are overwritten).
        seed: seeds the weights.
        hidden_size: transformer width (wav2vec2-base: 768).
        num_layers: transformer layers (base: 12).
        num_heads: attention heads (base: 12).
        conv_channels: channels of the 7 convolutional layers (base: 512).

    Returns:
        The folder's checksum (also in ``out/checksum.sha256``).

    Example:
        >>> key = build_tiny_backbone(tmp_path / "tiny", seed=0)  # doctest: +SKIP
        >>> len(key)  # doctest: +SKIP
        64
    """
    config = tiny_wav2vec2_config(
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        conv_channels=conv_channels,
    )
    return build_random_backbone(out, config=config, seed=seed, kind="tiny")


def build_random_backbone(out: Path, *, config: object, seed: int = 0, kind: str = "random") -> str:
    """Write a random-weight wav2vec2 with any ``transformers.Wav2Vec2Config`` as a backbone.

    ``build_random_backbone(out, config=Wav2Vec2Config())`` has wav2vec2-base's size and
    cost (for benchmarks) and none of its knowledge.

    Returns:
        The folder's checksum.

    Example:
        >>> from transformers import Wav2Vec2Config
        >>> build_random_backbone(tmp_path / "base", config=Wav2Vec2Config())  # doctest: +SKIP
    """
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    base = Wav2Vec2Model(config)
    base.save_pretrained(out / WAV2VEC2_SUBDIR)
    # wav2vec2-base's preprocessing: normalise each waveform to zero mean, unit variance.
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=False,
    ).save_pretrained(out / WAV2VEC2_SUBDIR)

    generator = torch.Generator().manual_seed(seed + 1)
    finetuned = {}
    for key, tensor in base.state_dict().items():
        if tensor.is_floating_point():
            noise = torch.randn(tensor.shape, generator=generator) * _FINETUNE_NOISE
            tensor = tensor + noise
        # SpeechBrain's wrapper holds the transformers model as ``.model``.
        finetuned[f"model.{key}"] = tensor.clone()
    torch.save(finetuned, out / "wav2vec2.ckpt")

    hidden_size = config.hidden_size
    head = torch.randn(len(IEMOCAP_LABELS), hidden_size, generator=generator)
    head = head / hidden_size**0.5
    # model.ckpt is ModuleList([output_mlp]); SpeechBrain's Linear keeps its layer as ``.w``.
    torch.save({"0.w.weight": head}, out / "model.ckpt")
    write_label_encoder(out / "label_encoder.txt", IEMOCAP_LABELS)
    (out / "hyperparams.yaml").write_text(
        render_hyperparams(
            out,
            encoder_dim=hidden_size,
            out_n_neurons=len(IEMOCAP_LABELS),
            origin=f"{kind} random wav2vec2 (serhpo.backbones.tiny), not a trained model",
        )
    )
    provenance = {
        "kind": kind,
        "seed": seed,
        "hidden_size": hidden_size,
        "num_layers": config.num_hidden_layers,
        "num_heads": config.num_attention_heads,
        "conv_channels": list(config.conv_dim),
        "labels": list(IEMOCAP_LABELS),
    }
    key = write_checksum(out, provenance=provenance)
    log.info("%s wav2vec2 backbone written to %s (checksum %s)", kind, out, key[:12])
    return key


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo build-tiny-backbone``."""
    parser.add_argument("out", type=Path, help="backbone folder to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--hidden-size", type=int, default=32, help="transformer width")
    parser.add_argument("--num-layers", type=int, default=2, help="transformer layers")
    parser.add_argument("--num-heads", type=int, default=2, help="attention heads")
    parser.add_argument(
        "--conv-channels", type=int, default=16, help="channels of the 7 conv layers"
    )


def run(args: argparse.Namespace) -> int:
    """Build the tiny backbone; print its checksum."""
    key = build_tiny_backbone(
        args.out,
        seed=args.seed,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        conv_channels=args.conv_channels,
    )
    print(key)
    return 0
