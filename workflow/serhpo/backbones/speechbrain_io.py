"""A backbone folder: SpeechBrain's emotion classifier files around a wav2vec2, on local disk.

Both ``build-tiny-backbone`` and ``fetch-backbone`` write the same layout, the one of
``speechbrain/emotion-recognition-wav2vec2-IEMOCAP`` plus its wav2vec2 in a subfolder::

    <backbone>/
        hyperparams.yaml      SpeechBrain inference hparams; sources point into this folder
        wav2vec2.ckpt         the (IEMOCAP fine-tuned) wav2vec2 weights, SpeechBrain keys
        model.ckpt            the IEMOCAP head: Linear(encoder_dim -> 4), no bias
        label_encoder.txt     IEMOCAP's labels neu, ang, hap, sad
        wav2vec2/             a transformers ``save_pretrained`` folder (config, weights,
                              preprocessor_config.json): the architecture and base weights
        backbone.json         provenance (sources, revisions, seed) and per-file hashes
        checksum.sha256       one line: the folder's checksum, the feature-cache key

``EncoderClassifier.from_hparams(source=<backbone>, savedir=...)`` loads such a folder
offline. :func:`load_encoder_classifier` does the same with the folder's current
location passed as overrides, so a moved or copied folder keeps loading.

serhpo's own stages never do that: SpeechBrain's HyperPyYAML evaluates the tags of
``hyperparams.yaml`` (``!new:``, ``!apply:``, ``!name:``), so opening a folder someone
else wrote would run whatever code its YAML names. :func:`load_backbone` builds the same
modules itself instead: the transformers ``Wav2Vec2Model`` from ``wav2vec2/config.json``
and its weights, the fine-tuned ``wav2vec2.ckpt`` over them and the head from
``model.ckpt``, every checkpoint read with ``torch.load(..., weights_only=True)``; of the
YAML it reads one plain value (``output_norm``), with every tag left unevaluated. The
result is SpeechBrain's model, parameter for parameter (the tests compare the two).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from serhpo.corpora.download import file_sha256
from serhpo.errors import UserError

log = logging.getLogger(__name__)

#: IEMOCAP's four labels in the order of the pretrained head's outputs.
IEMOCAP_LABELS: tuple[str, ...] = ("neu", "ang", "hap", "sad")

#: IEMOCAP's labels onto EmoDB's (the default target set), for zero-shot evaluation.
IEMOCAP_TO_TARGET: dict[str, str] = {
    "neu": "neutral",
    "ang": "anger",
    "hap": "happiness",
    "sad": "sadness",
}

#: The SpeechBrain wav2vec2 wrapper in SpeechBrain 1.1 (older hparams name a deprecated path).
WAV2VEC2_CLASS = "speechbrain.integrations.huggingface.wav2vec2.Wav2Vec2"

HYPERPARAMS = "hyperparams.yaml"
WAV2VEC2_SUBDIR = "wav2vec2"
CHECKSUM_FILE = "checksum.sha256"
MANIFEST_FILE = "backbone.json"
#: Files a usable backbone folder must hold (besides the wav2vec2 subfolder).
REQUIRED_FILES = (HYPERPARAMS, "wav2vec2.ckpt", "model.ckpt", "label_encoder.txt")
#: Stands for the folder's own location when hashing hyperparams.yaml.
_FOLDER_TOKEN = "<backbone_dir>"

# The layout of the real model's inference hyperparams.yaml (hub repo
# speechbrain/emotion-recognition-wav2vec2-IEMOCAP), written out for a local folder.
_HYPERPARAMS_TEMPLATE = """\
# ############################################################################
# Model: wav2vec2 for emotion recognition (IEMOCAP layout), written by serhpo
# {origin}
# ############################################################################

# Hparams NEEDED
HPARAMS_NEEDED: ["encoder_dim", "out_n_neurons", "label_encoder", "softmax"]
# Modules Needed
MODULES_NEEDED: ["wav2vec2", "avg_pool", "output_mlp"]

# Feature parameters: a local transformers folder, so that loading needs no network
wav2vec2_hub: {wav2vec2_hub}
wav2vec2_folder: {wav2vec2_folder}

# Pretrain folder (this folder)
pretrained_path: {pretrained_path}

# parameters
encoder_dim: {encoder_dim}
out_n_neurons: {out_n_neurons}

wav2vec2: !new:{wav2vec2_class}
    source: !ref <wav2vec2_hub>
    output_norm: True
    freeze: True
    save_path: !ref <wav2vec2_folder>

avg_pool: !new:speechbrain.nnet.pooling.StatisticsPooling
    return_std: False

output_mlp: !new:speechbrain.nnet.linear.Linear
    input_size: !ref <encoder_dim>
    n_neurons: !ref <out_n_neurons>
    bias: False

model: !new:torch.nn.ModuleList
    - [!ref <output_mlp>]

modules:
    wav2vec2: !ref <wav2vec2>
    output_mlp: !ref <output_mlp>
    avg_pool: !ref <avg_pool>

softmax: !new:speechbrain.nnet.activations.Softmax

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        wav2vec2: !ref <wav2vec2>
        model: !ref <model>
        label_encoder: !ref <label_encoder>
    paths:
        wav2vec2: !ref <pretrained_path>/wav2vec2.ckpt
        model: !ref <pretrained_path>/model.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""


def _yaml_string(value: str) -> str:
    # A JSON string is a valid YAML scalar: quotes paths with spaces, colons or '#'.
    return json.dumps(value)


def render_hyperparams(
    folder: Path, *, encoder_dim: int, out_n_neurons: int = 4, origin: str = ""
) -> str:
    """The inference ``hyperparams.yaml`` text for a backbone at ``folder``.

    Example:
        >>> text = render_hyperparams(Path("/models/tiny"), encoder_dim=32)
        >>> "wav2vec2_hub: \\"/models/tiny/wav2vec2\\"" in text
        True
    """
    folder = Path(folder).resolve()
    return _HYPERPARAMS_TEMPLATE.format(
        origin=origin or "a local backbone folder",
        wav2vec2_hub=_yaml_string(str(folder / WAV2VEC2_SUBDIR)),
        wav2vec2_folder=_yaml_string(str(folder / WAV2VEC2_SUBDIR)),
        pretrained_path=_yaml_string(str(folder)),
        encoder_dim=int(encoder_dim),
        out_n_neurons=int(out_n_neurons),
        wav2vec2_class=WAV2VEC2_CLASS,
    )


def write_label_encoder(path: Path, labels: tuple[str, ...] = IEMOCAP_LABELS) -> None:
    """Write a SpeechBrain ``CategoricalEncoder`` file mapping ``labels`` to 0, 1, ...

    Example:
        >>> write_label_encoder(tmp_path / "label_encoder.txt")  # doctest: +SKIP
    """
    lines = [f"'{label}' => {index}" for index, label in enumerate(labels)]
    lines += ["================", "'starting_index' => 0"]
    Path(path).write_text("\n".join(lines) + "\n")


# A ``key: value`` line (any indentation) whose value may be a hub id or a path.
_KEY_LINE = re.compile(
    r"^(?P<indent>\s*)(?P<key>[A-Za-z_]\w*):[ \t]*"
    r"(?P<value>[^\s#!&*][^#]*?)[ \t]*(?P<comment>#.*)?$"
)
_CLASS_LINE = re.compile(r"^(?P<indent>\s*wav2vec2:\s*)!new:(?P<cls>[\w.]+)\s*$")


def _local_path(value: str, folder: Path, hub_ids: Mapping[str, str]) -> str | None:
    for hub_id, sub in hub_ids.items():
        if value == hub_id or value.startswith(hub_id + "/"):
            local = folder / sub if sub else folder
            rest = value[len(hub_id) :].lstrip("/")
            return str(local / rest) if rest else str(local)
    return None


def localize_hyperparams(
    text: str,
    *,
    folder: Path,
    hub_ids: Mapping[str, str],
) -> str:
    """Point a downloaded ``hyperparams.yaml`` at local copies, for offline loading.

    Every ``key: value`` whose value is one of ``hub_ids`` (hub id -> sub-path of
    ``folder``, ``""`` for the folder itself), or a file inside one, gets the local
    absolute path; the wav2vec2 class is set to SpeechBrain 1.1's
    :data:`WAV2VEC2_CLASS` (older files name a deprecated module).

    Raises:
        UserError: when the first hub id (the wav2vec2) is not found, or a hub id is
            left somewhere it cannot be replaced (loading would then need the network).

    Example:
        >>> text = "wav2vec2_hub: facebook/wav2vec2-base\\npretrained_path: sb/emo\\n"
        >>> print(localize_hyperparams(text, folder=Path("/m"),
        ...       hub_ids={"facebook/wav2vec2-base": "wav2vec2", "sb/emo": ""}))
        wav2vec2_hub: "/m/wav2vec2"
        pretrained_path: "/m"
        <BLANKLINE>
    """
    folder = Path(folder).resolve()
    found: set[str] = set()
    lines = []
    for line in text.splitlines():
        match = _KEY_LINE.match(line)
        if match:
            value = match["value"].strip().strip("\"'")
            local = _local_path(value, folder, hub_ids)
            if local is not None:
                line = f"{match['indent']}{match['key']}: {_yaml_string(local)}"
                found.update(h for h in hub_ids if value == h or value.startswith(h + "/"))
        class_match = _CLASS_LINE.match(line)
        if class_match and class_match["cls"] != WAV2VEC2_CLASS:
            line = f"{class_match['indent']}!new:{WAV2VEC2_CLASS}"
        lines.append(line)
    wav2vec2_id = next(iter(hub_ids))
    code = [line.split("#", 1)[0] for line in lines]
    problems = [f"it never names {wav2vec2_id!r}"] if wav2vec2_id not in found else []
    problems += [
        f"it still names {hub_id!r} where no plain value can be replaced"
        for hub_id in hub_ids
        # another repository whose id merely starts with this one does not count
        if any(re.search(re.escape(hub_id) + r"(?![\w.-])", line) for line in code)
    ]
    if problems:
        raise UserError(
            f"{HYPERPARAMS} cannot be pointed at the local copies: {'; '.join(problems)}. "
            "Expected lines such as 'wav2vec2_hub: facebook/wav2vec2-base' and "
            "'pretrained_path: speechbrain/emotion-recognition-wav2vec2-IEMOCAP'. Check that "
            "the folder holds the SpeechBrain model's original hyperparams.yaml (kept as "
            "hyperparams.orig.yaml after the first fetch)."
        )
    return "\n".join(lines) + "\n"


def check_backbone_folder(folder: Path) -> Path:
    """Return ``folder`` resolved if it holds a backbone's files; raise otherwise.

    Raises:
        UserError: naming the missing files and how to create the folder.

    Example:
        >>> check_backbone_folder(Path("resources/models/tiny_wav2vec2"))  # doctest: +SKIP
        PosixPath('/.../resources/models/tiny_wav2vec2')
    """
    folder = Path(folder)
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if not (folder / WAV2VEC2_SUBDIR / "config.json").is_file():
        missing.append(f"{WAV2VEC2_SUBDIR}/config.json")
    if missing:
        raise UserError(
            f"backbone folder {folder} lacks {missing}; expected a SpeechBrain emotion "
            f"classifier ({', '.join(REQUIRED_FILES)}) with its wav2vec2 in "
            f"{WAV2VEC2_SUBDIR}/. Create it with `serhpo build-tiny-backbone {folder}` "
            f"or `serhpo fetch-backbone {folder}`."
        )
    return folder.resolve()


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file of a backbone folder, by relative path.

    Skips hidden files and folders (e.g. the hub client's ``.cache``) and the
    checksum and manifest files themselves. ``hyperparams.yaml`` is hashed with the
    folder's own location replaced by a token, so that the same model built or
    fetched into another folder has the same hashes.

    Example:
        >>> sorted(file_hashes(Path("resources/models/tiny_wav2vec2")))[:2]  # doctest: +SKIP
        ['hyperparams.yaml', 'label_encoder.txt']
    """
    folder = Path(folder).resolve()
    hashes: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        name = relative.as_posix()
        if name in (CHECKSUM_FILE, MANIFEST_FILE):
            continue
        if name == HYPERPARAMS:
            text = path.read_text().replace(_yaml_string(str(folder))[1:-1], _FOLDER_TOKEN)
            hashes[name] = hashlib.sha256(text.encode()).hexdigest()
        else:
            hashes[name] = file_sha256(path)
    return hashes


def folder_checksum(hashes: Mapping[str, str]) -> str:
    """One SHA-256 over the per-file hashes of :func:`file_hashes`.

    Example:
        >>> folder_checksum({"a": "00"}) == folder_checksum({"a": "00"})
        True
    """
    listing = "".join(f"{digest}  {name}\n" for name, digest in sorted(hashes.items()))
    return hashlib.sha256(listing.encode()).hexdigest()


def write_checksum(folder: Path, *, provenance: Mapping[str, Any]) -> str:
    """Hash a backbone folder; write ``checksum.sha256`` and ``backbone.json``; return the key.

    Example:
        >>> key = write_checksum(folder, provenance={"kind": "tiny", "seed": 0})  # doctest: +SKIP
    """
    folder = Path(folder)
    hashes = file_hashes(folder)
    key = folder_checksum(hashes)
    manifest = {**provenance, "checksum": key, "files": hashes}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (folder / CHECKSUM_FILE).write_text(key + "\n")
    return key


def read_checksum(folder: Path) -> str:
    """The checksum written by :func:`write_checksum`; computed (and logged) if absent.

    Example:
        >>> len(read_checksum(Path("resources/models/tiny_wav2vec2")))  # doctest: +SKIP
        64
    """
    path = Path(folder) / CHECKSUM_FILE
    if path.is_file():
        return path.read_text().split()[0]
    log.warning("%s has no %s; hashing its files (slow for large models)", folder, CHECKSUM_FILE)
    return folder_checksum(file_hashes(folder))


def load_encoder_classifier(
    folder: Path, *, savedir: Path | None = None, freeze_params: bool = True
) -> Any:
    """Load a backbone folder with SpeechBrain's ``EncoderClassifier.from_hparams``.

    The folder's current location is passed as the ``wav2vec2_hub`` and
    ``pretrained_path`` overrides, so nothing is read from the network or from where
    the folder was first written.

    HyperPyYAML evaluates the tags of ``hyperparams.yaml``, so this runs whatever code the
    file names: use it only on folders you built or fetched yourself (the tests compare
    :func:`load_backbone` with it). serhpo's stages use :func:`load_backbone`.

    Args:
        folder: a backbone folder (see the module docstring).
        savedir: where SpeechBrain links the collected files; ``None`` reads them in place.
        freeze_params: SpeechBrain's default (eval mode, no gradients); the trainer
            chooses what to train itself.

    Returns:
        A ``speechbrain.inference.classifiers.EncoderClassifier`` whose ``mods`` hold
        ``wav2vec2``, ``avg_pool`` and ``output_mlp``.

    Example:
        >>> folder = Path("resources/models/tiny_wav2vec2")
        >>> classifier = load_encoder_classifier(folder)  # doctest: +SKIP
        >>> classifier.hparams.label_encoder.decode_ndim(0)  # doctest: +SKIP
        'neu'
    """
    folder = check_backbone_folder(folder)
    from speechbrain.inference.classifiers import EncoderClassifier

    local = {
        "wav2vec2_hub": str(folder / WAV2VEC2_SUBDIR),
        "wav2vec2_folder": str(folder / WAV2VEC2_SUBDIR),
        "pretrained_path": str(folder),
    }
    # Override only the keys the file has: SpeechBrain rejects overrides of unknown keys.
    keys = set(re.findall(r"^([A-Za-z_]\w*):", (folder / HYPERPARAMS).read_text(), re.M))
    overrides = {key: value for key, value in local.items() if key in keys}
    return EncoderClassifier.from_hparams(
        source=str(folder),
        savedir=None if savedir is None else str(savedir),
        overrides=overrides,
        freeze_params=freeze_params,
    )


# ---------------------------------------------------------------- loading without SpeechBrain


class _InertLoader(yaml.SafeLoader):
    """A YAML loader that reads every tag (``!new:``, ``!apply:``, ``!!python/...``) as plain
    data: a tagged mapping becomes a dict, a tagged list a list, a tagged scalar a string.
    Nothing is imported, constructed or called."""


def _inert(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_InertLoader.add_constructor(None, _inert)


def read_hyperparams_plain(folder: Path) -> dict[str, Any]:
    """A backbone folder's ``hyperparams.yaml`` as plain data: tags are never evaluated.

    Raises:
        UserError: the file is not YAML, or not a mapping.

    Example:
        >>> read_hyperparams_plain(Path("resources/models/tiny_wav2vec2"))["wav2vec2"][
        ...     "output_norm"]  # doctest: +SKIP
        True
    """
    path = Path(folder) / HYPERPARAMS
    try:
        data = yaml.load(path.read_text(), Loader=_InertLoader)  # noqa: S506 (inert loader)
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as error:
        raise UserError(
            f"{path} cannot be read as YAML ({type(error).__name__}: {error}); expected the "
            "hyperparams.yaml that `serhpo build-tiny-backbone` or `serhpo fetch-backbone` "
            "writes. Rebuild or refetch the backbone folder (or copy the model folder again)."
        ) from None
    if not isinstance(data, dict):
        raise UserError(
            f"{path} holds {type(data).__name__}, not a mapping of hyperparameters; expected "
            "the hyperparams.yaml of a SpeechBrain emotion classifier. Rebuild or refetch it."
        )
    return data


def read_state_dict(path: Path, *, fix: str) -> dict[str, torch.Tensor]:
    """A checkpoint of tensors, read with ``torch.load(..., weights_only=True)`` on the CPU.

    Args:
        path: the ``.pt`` / ``.ckpt`` file.
        fix: what to do when it cannot be read (ends the error message).

    Raises:
        UserError: naming the file when it is missing, truncated, empty, not a PyTorch
            checkpoint, holds objects the weights-only unpickler refuses, or holds something
            other than a mapping of names to tensors.

    Example:
        >>> state = read_state_dict(Path("model.pt"), fix="Retrain the model.")  # doctest: +SKIP
    """
    path = Path(path)
    size = path.stat().st_size if path.is_file() else None
    if size is None:
        raise UserError(f"{path} does not exist or is not a file; {fix}")
    if size == 0:
        raise UserError(f"{path} is empty (0 bytes): a copy or a write was cut short. {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, random bytes, refused pickle, I/O error
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UserError(
            f"{path} cannot be read as PyTorch weights ({type(error).__name__}: {first}); "
            f"it is truncated, corrupt or not a weights file ({size} bytes). {fix}"
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    ):
        raise UserError(
            f"{path} holds a {type(state).__name__}, not a mapping of parameter names to "
            f"tensors (a state dict). {fix}"
        )
    return dict(state)


def check_finite(state: Mapping[str, torch.Tensor], *, path: Path, fix: str) -> None:
    """Refuse weights with NaN or infinite values, naming the file and the first tensor.

    Example:
        >>> check_finite({"w": torch.ones(2)}, path=Path("model.pt"), fix="Retrain it.")
    """
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise UserError(
                f"{path} holds non-finite weights: {bad} of {tensor.numel()} values of {name!r} "
                f"are NaN or infinite, so every score it gave would be meaningless. {fix}"
            )


@dataclass
class Wav2Vec2Backbone:
    """A backbone folder's modules, built by serhpo (see :func:`load_backbone`).

    Attributes:
        model: the transformers ``Wav2Vec2Model`` with the fine-tuned weights, in eval mode,
            its parameters frozen (what SpeechBrain's wrapper holds as ``.model``).
        normalize_wav: whether the waveform is normalised first (``do_normalize`` of
            ``wav2vec2/preprocessor_config.json``, as SpeechBrain reads it).
        output_norm: whether the encoder output is layer-normalised (``hyperparams.yaml``).
        head_weight: the IEMOCAP head ``(4, hidden_size)`` from ``model.ckpt`` (no bias).
    """

    model: nn.Module
    normalize_wav: bool
    output_norm: bool
    head_weight: torch.Tensor


def _refetch(folder: Path) -> str:
    return (
        f"Rebuild or refetch the backbone folder {folder} (`serhpo build-tiny-backbone` / "
        "`serhpo fetch-backbone`), or, inside a model folder, copy the model folder again."
    )


def _read_output_norm(folder: Path) -> bool:
    wav2vec2 = read_hyperparams_plain(folder).get("wav2vec2")
    value = wav2vec2.get("output_norm", False) if isinstance(wav2vec2, dict) else False
    if isinstance(value, str):  # a tag such as ``!ref <x>`` left as text
        value = value.strip().lower() in ("true", "yes", "on", "1")
    return bool(value)


def _read_normalize_wav(folder: Path) -> bool:
    path = folder / WAV2VEC2_SUBDIR / "preprocessor_config.json"
    if not path.is_file():
        return True  # transformers' Wav2Vec2FeatureExtractor default
    try:
        return bool(json.loads(path.read_text()).get("do_normalize", True))
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
        raise UserError(
            f"{path} is not a JSON object ({type(error).__name__}: {error}). {_refetch(folder)}"
        ) from None


def _build_wav2vec2(folder: Path) -> nn.Module:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    source = folder / WAV2VEC2_SUBDIR
    try:
        raw = json.loads((source / "config.json").read_text())
        model_type = raw.get("model_type", "wav2vec2")
        # As AutoConfig reads it for SpeechBrain (plain JSON; no code is ever loaded).
        config = Wav2Vec2Config.from_pretrained(str(source), local_files_only=True)
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise UserError(
            f"{source / 'config.json'} is not a wav2vec2 configuration "
            f"({type(error).__name__}: {error}). {_refetch(folder)}"
        ) from None
    if model_type != "wav2vec2":
        raise UserError(
            f"{source / 'config.json'} describes a {model_type!r} model; expected "
            f"'wav2vec2'. {_refetch(folder)}"
        )
    # Missing weights would be drawn at random: never from the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        try:
            model = Wav2Vec2Model.from_pretrained(
                str(source),
                config=config,
                local_files_only=True,
                trust_remote_code=False,
                weights_only=True,
            )
        except Exception as error:  # a corrupt safetensors/bin file, missing weights
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise UserError(
                f"the wav2vec2 weights in {source} cannot be loaded "
                f"({type(error).__name__}: {first}). {_refetch(folder)}"
            ) from None
    # As SpeechBrain's wrapper (apply_spec_augment=False) with freeze: True.
    model.config.apply_spec_augment = False
    return model


def load_backbone(folder: Path) -> Wav2Vec2Backbone:
    """Build a backbone folder's wav2vec2 and IEMOCAP head without running any of its code.

    What ``EncoderClassifier.from_hparams`` gives (:func:`load_encoder_classifier`), made
    by serhpo: ``Wav2Vec2Model`` from ``wav2vec2/config.json`` and its weights (safetensors
    or a weights-only ``pytorch_model.bin``); ``wav2vec2.ckpt``'s ``model.*`` tensors over
    them (as SpeechBrain's pretrainer transfers them: unmatched names are logged and
    skipped); the head from ``model.ckpt``; ``output_norm`` read from ``hyperparams.yaml``
    as plain data (tags such as ``!apply:`` are never evaluated).

    Raises:
        UserError: naming the file that is missing, corrupt, of the wrong shape, or holds
            non-finite weights, and how to get a good one.

    Example:
        >>> backbone = load_backbone(Path("resources/models/tiny_wav2vec2"))  # doctest: +SKIP
        >>> backbone.head_weight.shape  # doctest: +SKIP
        torch.Size([4, 32])
    """
    folder = check_backbone_folder(folder)
    fix = _refetch(folder)
    output_norm = _read_output_norm(folder)
    normalize_wav = _read_normalize_wav(folder)
    model = _build_wav2vec2(folder)
    ckpt = folder / "wav2vec2.ckpt"
    finetuned = read_state_dict(ckpt, fix=fix)
    check_finite(finetuned, path=ckpt, fix=fix)
    # SpeechBrain's wrapper holds the transformers model as ``.model``.
    prefix = "model."
    state = {k[len(prefix) :]: v for k, v in finetuned.items() if k.startswith(prefix)}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise UserError(
            f"{ckpt} does not fit the wav2vec2 of {folder / WAV2VEC2_SUBDIR / 'config.json'} "
            f"({_first_lines(error)}). {fix}"
        ) from None
    if len(state) - len(result.unexpected_keys) == 0:
        raise UserError(
            f"none of the {len(finetuned)} tensors of {ckpt} belongs to the wav2vec2 of "
            f"{folder / WAV2VEC2_SUBDIR}; expected SpeechBrain's 'model.<name>' keys. {fix}"
        )
    for key in result.missing_keys:
        log.warning("%s has no tensor for %s; the base weights are kept", ckpt, key)
    for key in result.unexpected_keys:
        log.warning("%s: the tensor %s fits nothing in the wav2vec2; skipped", ckpt, key)
    check_finite(dict(model.state_dict()), path=folder / WAV2VEC2_SUBDIR, fix=fix)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    head_path = folder / "model.ckpt"
    head = read_state_dict(head_path, fix=fix)
    check_finite(head, path=head_path, fix=fix)
    weight = head.get("0.w.weight")
    hidden = int(model.config.hidden_size)
    if weight is None or tuple(weight.shape) != (len(IEMOCAP_LABELS), hidden):
        found = "no '0.w.weight'" if weight is None else f"shape {tuple(weight.shape)}"
        raise UserError(
            f"{head_path} has {found}; expected the IEMOCAP head '0.w.weight' of shape "
            f"({len(IEMOCAP_LABELS)}, {hidden}). {fix}"
        )
    return Wav2Vec2Backbone(
        model=model, normalize_wav=normalize_wav, output_norm=output_norm, head_weight=weight
    )


def _first_lines(error: BaseException, *, lines: int = 3) -> str:
    text = " ".join(line.strip() for line in str(error).strip().splitlines()[:lines])
    return text[:400]
