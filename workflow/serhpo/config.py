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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from serhpo.errors import UserError

#: The schema shipped with the workflow.
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """Read the config schema."""
    with open(path) as stream:
        return yaml.safe_load(stream)


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


def validate_config(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Check ``config`` against the schema.

    Raises:
        UserError: naming the key, the value found and what is allowed.
    """
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    lines = []
    for error in errors[:5]:
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        if error.validator == "additionalProperties":
            allowed = f"the keys {sorted(error.schema.get('properties', {}))}"
        else:
            allowed = error.schema.get("description", "")
        lines.append(
            f"config key {key}: {error.message}." + (f" Allowed: {allowed}" if allowed else "")
        )
    raise UserError("\n".join(lines) + "\nFix config.yaml (or the --configfile that sets it).")


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
    """Merge a stage's ``--config`` files and ``--config-json``, fill defaults, check what is set.

    A ``null`` in a later file removes the entry (:func:`drop_nulls`). Only the top-level keys
    that were given are validated, since a stage needs only some of
    them (a study needs no ``corpora``); defaults fill the rest.

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
    schema = load_schema(schema_path)
    merged = drop_nulls(merged, schema)
    completed = with_defaults(merged, schema)
    validate_config({key: completed[key] for key in merged}, schema)
    return completed


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
