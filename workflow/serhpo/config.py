"""Reading config files outside Snakemake, and filling in the schema's defaults.

The JSON Schema in ``workflow/schemas/config.schema.yaml`` is the one place where keys,
their allowed values and their defaults are written down; Snakemake's ``validate`` checks it
at start, and :func:`with_defaults` fills defaults the same way for keys nested under
``additionalProperties`` (one entry per corpus), which ``validate`` leaves alone.

An override file removes what an earlier file declares by setting it to ``null``
(``corpora: {cremad: null}``, ``search_space: {unfreeze: null}``): Snakemake's own merge of
several ``--configfile``s, like :func:`deep_merge`, leaves ``None`` there, and
:func:`drop_nulls` removes every ``None`` that the schema does not accept as a value (a
``null`` the schema allows, such as ``label_map: {surprised: null}`` or ``sha256: null``,
keeps its meaning). A key that has a default gets it back.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import yaml

from serhpo.errors import UserError
from serhpo.schema import (  # noqa: F401  # re-exported: the config API in one place
    SCHEMA_PATH,
    _shipped_schema,
    load_schema,
    schema_default,
    schema_node,
)

if TYPE_CHECKING:  # the settings classes import torch and numpy; this module stays light
    from serhpo.federated.settings import FederatedSettings
    from serhpo.hpo.settings import HpoSettings
    from serhpo.hpo.space import SearchSpace
    from serhpo.training import TrainingConfig


def _types(node: Mapping[str, Any]) -> set[str]:
    kind = node.get("type", ())
    return {kind} if isinstance(kind, str) else set(kind)


def coerce(value: Any, node: Mapping[str, Any]) -> Any:
    """Give values the plain types the schema names, where the meaning cannot change.

    HPO engines hand over numpy scalars, floats for integers (``5.0``) and integers for
    numbers; ``serhpo train --param maxlen=none`` gives the string ``none`` and
    ``--param lr=3e-3`` the string ``3e-3`` (YAML 1.1 wants a dot). This is the one
    conversion: by the schema's ``type`` of each key, nested mappings included. Keys whose type
    admits a string (a search space entry) are left as they are; validation judges the rest.

    Example:
        >>> coerce({"maxlen": 48000.0, "lr": 1, "grad_clip": "none"}, schema_node("training"))
        {'maxlen': 48000, 'lr': 1.0, 'grad_clip': None}
    """
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()
    if isinstance(value, Mapping):
        properties = node.get("properties", {})
        extra = node.get("additionalProperties")
        return {
            key: coerce(item, properties.get(key, extra if isinstance(extra, Mapping) else {}))
            for key, item in value.items()
        }
    types = _types(node)
    if not types or types & {"string", "object", "array"}:
        return value
    if isinstance(value, str) and "null" in types and value.lower() in {"none", "null"}:
        return None
    if "boolean" in types and not isinstance(value, bool):
        if isinstance(value, str) and value.lower() in _BOOLEAN_WORDS:
            return _BOOLEAN_WORDS[value.lower()]
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and types & {"number", "integer"}:
        try:  # text such as --param lr=3e-3, which YAML 1.1 reads as a string
            value = float(value)
        except ValueError:
            return value
    if "integer" in types and isinstance(value, float) and value.is_integer():
        return int(value)
    if "number" in types and "integer" not in types and isinstance(value, int):
        return float(value)
    return value


_BOOLEAN_WORDS = {
    "true": True, "on": True, "yes": True, "1": True,
    "false": False, "off": False, "no": False, "0": False,
}  # fmt: skip


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into ``base`` key by key, as Snakemake merges several ``--configfile``s.

    Example:
        >>> deep_merge({"split": {"folds": 0, "strategy": "stratified"}},
        ...            {"split": {"strategy": "speaker"}})
        {'split': {'folds': 0, 'strategy': 'speaker'}}
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _accepts_null(node: Any) -> bool:
    return isinstance(node, Mapping) and jsonschema.Draft202012Validator(node).is_valid(None)


def drop_nulls(
    config: Mapping[str, Any],
    schema: Mapping[str, Any],
    *,
    removed: list[str] | None = None,
) -> dict[str, Any]:
    """A copy of ``config`` without the ``None`` entries that the schema does not allow.

    This is how an override file removes a corpus, a search-space parameter or any other
    entry an earlier file declares: ``corpora: {cremad: null}``. A ``None`` where the
    schema accepts ``null`` stays; a ``None`` under a key the schema does not know stays
    too, so that validation names the unknown key.

    Args:
        config: the merged configuration.
        schema: the config schema.
        removed: when given, the dotted path of every entry removed is appended to it.

    Example:
        >>> schema = {"properties": {"corpora": {"additionalProperties": {"type": "object"}},
        ...                          "sha256": {"type": ["string", "null"]}}}
        >>> drop_nulls({"corpora": {"emodb": {}, "cremad": None}, "sha256": None}, schema)
        {'corpora': {'emodb': {}}, 'sha256': None}
    """

    def clean(value: Any, node: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            return value
        node = node if isinstance(node, Mapping) else {}
        properties = node.get("properties", {})
        extra = node.get("additionalProperties")
        cleaned = {}
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, Mapping) else None)
            where = f"{path}.{key}" if path else str(key)
            if item is None and sub is not None and not _accepts_null(sub):
                if removed is not None:
                    removed.append(where)
                continue
            cleaned[key] = clean(item, sub, where)
        return cleaned

    return clean(copy.deepcopy(dict(config)), schema, "")


def with_defaults(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``config`` with every missing key that has a schema default filled in.

    Walks ``properties`` and ``additionalProperties`` (so each corpus entry gets its defaults).
    """

    def fill(value: Any, node: Mapping[str, Any]) -> Any:
        if not isinstance(value, dict):
            return value
        for key, sub in node.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = fill(value[key], sub)
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key in value:
                if key not in node.get("properties", {}):
                    value[key] = fill(value[key], extra)
        return value

    return fill(copy.deepcopy(dict(config)), schema)


def validate_config(
    config: Mapping[str, Any],
    schema: Mapping[str, Any],
    *,
    key: str = "",
    fix: str = "Fix config.yaml (or the --configfile that sets it).",
) -> None:
    """Check ``config`` against the schema (or, with ``key``, one section against its entry).

    Args:
        config: the configuration, or the section at ``key``.
        schema: the schema, or the section's entry in it.
        key: the dotted key of the section, named in the messages.
        fix: what the message tells the user to do.

    Raises:
        UserError: naming the key, the value found and what is allowed.

    Example:
        >>> validate_config({"maxlen": 100}, schema_node("training"), key="training")
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        serhpo.errors.UserError: config key training.maxlen: 100 is less than the minimum of 400...
    """
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    lines = [
        f"config key {'.'.join([*([key] if key else []), *path])}: found {value}; expected a "
        "finite number (JSON has no NaN or infinity)."
        for path, value in _non_finite(config)
    ]
    if not errors and not lines:
        return
    for error in errors[:5]:
        where = ".".join([*([key] if key else []), *(str(part) for part in error.absolute_path)])
        where = where or "(top level)"
        if error.validator == "additionalProperties":
            allowed = f"the keys {sorted(error.schema.get('properties', {}))}"
        else:
            allowed = error.schema.get("description", "")
        lines.append(
            f"config key {where}: {error.message}." + (f" Allowed: {allowed}" if allowed else "")
        )
    raise UserError("\n".join(lines) + "\n" + fix)


def _non_finite(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], float]]:
    if isinstance(value, float) and not math.isfinite(value):
        return [(path, value)]
    if isinstance(value, Mapping):
        return [hit for k, v in value.items() for hit in _non_finite(v, (*path, str(k)))]
    if isinstance(value, list):
        return [hit for i, v in enumerate(value) for hit in _non_finite(v, (*path, str(i)))]
    return []


def load_config(paths: Sequence[Path], *, schema_path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """Read, merge (later files win), validate and complete config files.

    A ``null`` in a later file removes the entry (:func:`drop_nulls`).

    Example:
        >>> config = load_config([Path("config.yaml")])  # doctest: +SKIP
        >>> config["split"]["strategy"]  # doctest: +SKIP
        'stratified'
    """
    merged: dict[str, Any] = {}
    for path in paths:
        merged = deep_merge(merged, read_config_file(Path(path)))
    schema = load_schema(schema_path)
    completed = with_defaults(drop_nulls(merged, schema), schema)
    validate_config(completed, schema)
    check_config(completed)
    return completed


def read_config_file(path: Path) -> dict[str, Any]:
    """Read one YAML config file.

    Raises:
        UserError: the file is missing, is not valid YAML (naming the file, the line and the
            column, counted from 1, and what the parser expected), or is not a mapping.

    Example:
        >>> read_config_file(Path("config.yaml"))["seed"]  # doctest: +SKIP
        0
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist; pass an existing --config file.")
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(
            str(part)
            for part in (getattr(error, "context", None), getattr(error, "problem", None))
            if part
        )
        raise UserError(
            f"config file {path}{where}: not valid YAML ({problem or error}). Fix the syntax "
            "there: indent nested keys by the same spaces, put a space after each colon, and "
            "close every bracket and quote."
        ) from None
    if not isinstance(content, Mapping):
        raise UserError(f"config file {path} holds {type(content).__name__}; expected a mapping.")
    return dict(content)


def check_config(config: Mapping[str, Any], *, project_dir: Path | None = None) -> None:
    """The checks the schema cannot express, each naming its config key; run before any work.

    - ``search_space`` and ``federated.search_space`` parse (:class:`SearchSpace`): bounds in
      order, loguniform above 0, known types, at least two choices;
    - each corpus' ``label_map`` maps onto ``target_labels`` or null, and for a built-in
      corpus (emodb, ravdess, cremad) names only that corpus' own labels;
    - with ``project_dir``, each corpus whose ``source`` is a local folder (not ``download``
      or ``synthetic``) has that folder, relative to ``project_dir``.

    Args:
        config: the completed configuration (defaults filled in).
        project_dir: the folder relative paths start from (Snakemake's working directory);
            None skips the file system checks.

    Raises:
        UserError: naming the key, what was found and what is allowed.

    Example:
        >>> check_config({"search_space": {"x": {"type": "int", "low": 2, "high": 1}}})
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        serhpo.errors.UserError: config key search_space.x: found low=2, high=1; ...
    """
    from serhpo.hpo.space import SearchSpace  # numpy; the config module stays light

    if "search_space" in config:
        SearchSpace.from_config(config["search_space"], key="search_space")
    federated = config.get("federated")
    if isinstance(federated, Mapping) and "search_space" in federated:
        SearchSpace.from_config(federated["search_space"], key="federated.search_space")
    targets = list(config.get("target_labels") or [])
    for corpus, entry in (config.get("corpora") or {}).items():
        if not isinstance(entry, Mapping):
            continue
        if targets:
            _check_label_map(corpus, entry, targets=targets)
        if project_dir is not None:
            _check_local_source(corpus, entry, project_dir=Path(project_dir))


def _check_label_map(corpus: str, entry: Mapping[str, Any], *, targets: list[str]) -> None:
    from serhpo.corpora import FORMATS

    label_map = entry.get("label_map") or {}
    for own, target in label_map.items():
        if target is not None and target not in targets:
            raise UserError(
                f"config key corpora.{corpus}.label_map.{own}: found {target!r}, which is not in "
                f"target_labels; allowed: {targets}, or null to drop the label. Fix the "
                "spelling, or add the label to target_labels."
            )
    fmt = FORMATS.get(entry.get("format") or corpus)
    if fmt is not None:
        unknown = sorted(set(label_map) - set(fmt.labels))
        if unknown:
            raise UserError(
                f"config key corpora.{corpus}.label_map: found {unknown}, which {fmt.name} does "
                f"not have; its own labels are {list(fmt.labels)}. Fix or remove those keys."
            )


def _check_local_source(corpus: str, entry: Mapping[str, Any], *, project_dir: Path) -> None:
    source = entry.get("source")
    if not isinstance(source, str) or source in ("download", "synthetic"):
        return
    folder = Path(source) if Path(source).is_absolute() else project_dir / source
    if folder.is_dir():
        return
    found = "a file" if folder.exists() else "no such folder"
    raise UserError(
        f"config key corpora.{corpus}.source: found {source!r}, but {folder} is {found}; "
        "expected a folder holding the corpus' files (relative to the project folder). "
        "Point the key at that folder, or set it to download or synthetic."
    )


class SettingsParam(str):
    """A stage's config keys as JSON, summarised in one line where Snakemake's report lists params.

    The report's "Job parameters" panel shows each param with ``format(value, "")``: a stage's
    whole JSON would be one escaped blob running off the page. This string formats as a short
    summary there and as the JSON itself with the format spec ``json``, which the rule's shell
    uses quoted: ``--config-json {params.settings:jsonq}``. Its value (and ``repr``, which
    Snakemake stores to detect a changed param) is the JSON, so reruns are as before.

    Example:
        >>> settings = SettingsParam('{"hpo":{"n_trials":3},"split":{"strategy":"speaker"}}')
        >>> f"{settings}"
        'JSON of config keys hpo, split (53 characters; the full text is in the shell command)'
        >>> f"{settings:json}" == settings
        True
    """

    __slots__ = ()

    def __format__(self, spec: str) -> str:
        if spec == "json":
            return str.__str__(self)
        if spec:
            return super().__format__(spec)
        try:
            keys = ", ".join(json.loads(self))
        except (ValueError, TypeError):
            return super().__format__(spec)
        return (
            f"JSON of config keys {keys} ({len(self)} characters; the full text is in the "
            "shell command)"
        )


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` (repeatable) and ``--config-json JSON`` to a stage's parser.

    Snakemake rules pass ``--config-json`` with only the keys a stage reads, so that editing
    another key does not rerun the stage; by hand, ``--config config.yaml`` is simpler.
    """
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        default=[],
        metavar="CONFIG.yaml",
        help="config file; repeat it to override keys (later files win, key by key)",
    )
    parser.add_argument(
        "--config-json",
        metavar="JSON",
        help="config keys as one JSON object, merged over the --config files",
    )


def read_stage_config(
    files: Sequence[Path], config_json: str | None = None, *, schema_path: Path = SCHEMA_PATH
) -> dict[str, Any]:
    """Merge a stage's ``--config`` files and ``--config-json``, and complete them.

    A ``null`` in a later file removes the entry (:func:`drop_nulls`). The JSON a rule passes
    holds only the keys its stage reads; :func:`complete_config` fills the rest from the
    schema's defaults and validates.

    Raises:
        UserError: a missing or unreadable file, bad JSON, or a key the schema rejects.

    Example:
        >>> read_stage_config([], '{"seed": 3}')["seed"]
        3
    """
    merged: dict[str, Any] = {}
    for path in files:
        merged = deep_merge(merged, read_config_file(Path(path)))
    if config_json:
        try:
            extra = json.loads(config_json)
        except json.JSONDecodeError as error:
            raise UserError(
                f"--config-json: found {config_json[:80]!r}, which is not JSON ({error}); "
                "expected one JSON object of config keys."
            ) from None
        if not isinstance(extra, Mapping):
            raise UserError(f"--config-json: found {type(extra).__name__}; expected a JSON object.")
        merged = deep_merge(merged, extra)
    return complete_config(merged, schema_path=schema_path)


def complete_config(
    config: Mapping[str, Any], *, schema_path: Path = SCHEMA_PATH
) -> dict[str, Any]:
    """A (partial) config with its nulls dropped, defaults filled, types made plain, validated.

    A stage's JSON may hold only some keys; every other key gets the schema's default. The
    corpus list is checked only when it names corpora (a study needs none).

    Raises:
        UserError: naming the key the schema rejects.

    Example:
        >>> complete_config({"training": {"maxlen": 32000.0}})["training"]["maxlen"]
        32000
        >>> complete_config({})["backbone"]["name"]
        'wav2vec2'
    """
    schema = _shipped_schema() if schema_path == SCHEMA_PATH else load_schema(schema_path)
    given = drop_nulls(config, schema)
    completed = coerce(with_defaults(given, schema), schema)
    # No corpora: a stage that reads none (a study); ``load_config`` requires them.
    validate_config(
        {key: value for key, value in completed.items() if key != "corpora" or value}, schema
    )
    return completed


def section_values(key: str, values: Mapping[str, Any], *, fix: str) -> dict[str, Any]:
    """One section's values (a trial's training keys, say) completed and validated like config.

    Args:
        key: the section's dotted config key (``training``, ``federated.training``).
        values: some of its keys; the schema's defaults fill the others.
        fix: what an error message tells the user to do.

    Raises:
        UserError: naming the key, the value found and what is allowed.

    Example:
        >>> section_values("training", {"lr": 1, "epochs": 3.0}, fix="")["epochs"]
        3
    """
    node = schema_node(key)
    completed = coerce(with_defaults(dict(values), node), node)
    validate_config(completed, node, key=key, fix=fix)
    return completed


@dataclass(frozen=True)
class Paths:
    """Where a stage finds the feature cache and the pretrained model.

    Attributes:
        cache_dir: config ``features.cache_dir``.
        backbone_dir: config ``backbone.dir`` (None: fetched or built by the workflow).
    """

    cache_dir: Path
    backbone_dir: Path | None


@dataclass(frozen=True)
class Settings:
    """A completed config as frozen typed settings; no field has a default of its own.

    Attributes:
        seed: config ``seed``.
        target_labels: config ``target_labels``.
        backbone: the model family, config ``backbone.name``.
        model: the family's fixed parameters, config ``model``.
        training: config ``training``.
        search_space: config ``search_space``, parsed.
        hpo: config ``hpo`` for one engine (None when :func:`settings` got no engine).
        federated: config ``federated.training``.
        federated_search_space: config ``federated.search_space``, parsed.
        paths: config ``features.cache_dir`` and ``backbone.dir``.
        config: the completed mapping itself, for the keys read as plain data.
    """

    seed: int
    target_labels: tuple[str, ...]
    backbone: str
    model: dict[str, Any]
    training: TrainingConfig
    search_space: SearchSpace
    hpo: HpoSettings | None
    federated: FederatedSettings
    federated_search_space: SearchSpace
    paths: Paths
    config: dict[str, Any]


def settings(config: Mapping[str, Any], *, engine: str | None = None) -> Settings:
    """Turn a config mapping, whole or partial, into frozen typed settings.

    The one way from config to typed values: defaults come from the schema, validation is
    the schema's (jsonschema, as Snakemake's ``validate``), then the checks it cannot express
    (a search space's bounds, a study that would never stop). The settings classes
    (:class:`~serhpo.training.TrainingConfig`, :class:`~serhpo.hpo.settings.HpoSettings`,
    :class:`~serhpo.federated.settings.FederatedSettings`) have no defaults or checks.

    Args:
        config: a config (``read_stage_config``'s, Snakemake's, or any part of one).
        engine: the HPO engine whose study settings to build (None: no ``hpo`` settings).

    Raises:
        UserError: naming the key, the value found and what is allowed.

    Example:
        >>> typed = settings({"training": {"lr": 0.001}}, engine="optuna")
        >>> typed.training.lr, typed.training.maxlen, typed.hpo.n_trials
        (0.001, 48000, 15)
    """
    from serhpo.federated.settings import FederatedSettings
    from serhpo.hpo.space import SearchSpace
    from serhpo.training import TrainingConfig

    completed = complete_config(config)
    return Settings(
        seed=completed["seed"],
        target_labels=tuple(completed["target_labels"]),
        backbone=completed["backbone"]["name"],
        model=dict(completed["model"]),
        training=TrainingConfig(**completed["training"]),
        search_space=SearchSpace.from_config(completed["search_space"], key="search_space"),
        hpo=None if engine is None else hpo_settings(completed, engine=engine),
        federated=FederatedSettings(**completed["federated"]["training"]),
        federated_search_space=SearchSpace.from_config(
            completed["federated"]["search_space"], key="federated.search_space"
        ),
        paths=Paths(
            cache_dir=Path(completed["features"]["cache_dir"]),
            backbone_dir=Path(completed["backbone"]["dir"])
            if completed["backbone"]["dir"]
            else None,
        ),
        config=completed,
    )


#: Trial parameters that change what the feature cache stores: the preprocessing (``maxlen``,
#: ``padding``) and whisper's ``window`` (one embedding per utterance and window).
CACHED_PARAMS: tuple[str, ...] = ("maxlen", "padding", "window")


def cache_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """What ``cache_features`` reads of a completed config: the JSON its rule passes.

    The same keys the studies read for their preprocessing (``training.maxlen``,
    ``training.padding``, the search space's :data:`CACHED_PARAMS`, the family and its fixed
    parameters), so the cache is planned from the very values the trials ask for; editing
    any other key (a learning rate) does not rerun it.

    Example:
        >>> cache_config(complete_config({}))["training"]
        {'maxlen': 48000, 'padding': True}
    """
    training = {key: config["training"][key] for key in ("maxlen", "padding")}
    space = {
        key: config["search_space"][key] for key in CACHED_PARAMS if key in config["search_space"]
    }
    # Pinned as the trials read it: keeps the space non-empty without another parameter in it.
    space.setdefault("padding", training["padding"])
    return {
        "target_labels": config["target_labels"],
        "backbone": {"name": config["backbone"]["name"]},
        "model": config["model"],
        "training": training,
        "search_space": space,
    }


@dataclass(frozen=True)
class CachePlan:
    """What ``cache_features`` computes before the studies: exactly what trials will read.

    Attributes:
        maxlens: the ``maxlen`` values (the search space's choices, its pinned value, or
            ``training.maxlen``); empty when the space draws ``maxlen`` from a range, since
            each trial then asks for its own value and computes it on demand.
        paddings: the ``padding`` values likewise.
        model_choices: family parameters of :data:`CACHED_PARAMS` that the search space
            names, with their values, or that ``model`` fixes (whisper's ``window``).
    """

    maxlens: tuple[int | None, ...]
    paddings: tuple[bool, ...]
    model_choices: dict[str, list[Any]]


def cache_plan(typed: Settings) -> CachePlan:
    """Plan the feature cache from a config's settings (:func:`settings`).

    Example:
        >>> plan = cache_plan(settings({"search_space": {"lr": 0.001, "maxlen":
        ...     {"type": "int", "low": 16000, "high": 48000}}}))
        >>> plan.maxlens, plan.paddings
        ((), (True,))
    """
    space = typed.search_space

    def values(name: str, fixed: Any) -> tuple[Any, ...]:
        if name not in space.names:
            return (fixed,)
        param = space[name]
        return tuple(param.choices or ()) if param.is_categorical else ()

    choices: dict[str, list[Any]] = {}
    for name in CACHED_PARAMS:
        if name in ("maxlen", "padding"):
            continue
        if name in space.names and space[name].is_categorical:
            choices[name] = list(space[name].choices or ())
        elif name in typed.model:  # fixed for every trial (named in the cache's summary)
            choices[name] = [typed.model[name]]
    return CachePlan(
        maxlens=values("maxlen", typed.training.maxlen),
        paddings=values("padding", typed.training.padding),
        model_choices=choices,
    )


def hpo_settings(config: Mapping[str, Any], *, engine: str) -> HpoSettings:
    """``settings(config, engine=engine).hpo`` without the rest (nor torch, which it imports).

    Raises:
        UserError: naming the key, the value found and what is allowed.

    Example:
        >>> hpo_settings({"hpo": {"grid_budget": "full"}}, engine="grid").n_trials is None
        True
    """
    from serhpo.hpo.settings import (
        ENGINE_NAMES,
        HpoSettings,
        MultiObjectiveSettings,
        PruningSettings,
    )

    completed = complete_config(config)
    if engine not in ENGINE_NAMES:
        raise UserError(f"engine {engine!r} is unknown; expected one of {', '.join(ENGINE_NAMES)}.")
    hpo = completed["hpo"]
    full_grid = engine == "grid" and hpo["grid_budget"] == "full"  # the paper's baseline
    return HpoSettings(
        engine=engine,
        seed=completed["seed"],
        n_trials=None if full_grid else hpo["n_trials"],
        time_budget_min=hpo["time_budget_min"],
        n_sobol=hpo["n_sobol"],
        n_startup_trials=hpo["n_startup_trials"],
        grid_points=hpo["grid_points"],
        pruning=PruningSettings(
            **hpo["pruning"], n_classes=len(completed["target_labels"]), step="epoch"
        ),
        multi_objective=MultiObjectiveSettings(**hpo["multi_objective"]),
        n_workers=hpo["n_workers"],
    ).checked()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo check-config``."""
    parser.add_argument(
        "files",
        type=Path,
        nargs="+",
        metavar="CONFIG.yaml",
        help="config files in the order Snakemake's --configfile gets them (later files win)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo check-config``: what the workflow checks before any job, file by file.

    Snakemake's own loading of ``--configfile`` says only "Config file is not valid JSON or
    YAML"; this names the file, the line and the column.

    Example:
        $ serhpo check-config config.yaml my-changes.yaml
    """
    config = load_config(args.files)
    check_config(config, project_dir=Path.cwd())
    print(f"config OK: {', '.join(str(path) for path in args.files)}")
    return 0
