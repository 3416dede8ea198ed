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
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
