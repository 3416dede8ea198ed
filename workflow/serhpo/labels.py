"""Mapping each corpus' own emotion labels onto the target label set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from serhpo.errors import UserError


def resolve_label_map(
    *,
    corpus: str,
    own_labels: Sequence[str],
    default_map: Mapping[str, str | None],
    overrides: Mapping[str, str | None] | None,
    target_labels: Sequence[str],
) -> dict[str, str | None]:
    """Combine a corpus' default label map with config's overrides and check it.

    A label mapped onto a name outside ``target_labels`` is dropped (mapped to ``None``):
    that is how a shorter target set (say, without boredom) drops a class everywhere.

    Args:
        corpus: the corpus' name, for messages.
        own_labels: every label the corpus' reader can produce.
        default_map: the format's default map onto EmoDB's seven labels.
        overrides: ``corpora.<name>.label_map`` from config (own label -> target label or null).
        target_labels: ``target_labels`` from config.

    Raises:
        UserError: an override names a label the corpus does not have, or an unknown target.

    Example:
        >>> resolve_label_map(corpus="ravdess", own_labels=["calm", "surprised"],
        ...     default_map={"calm": "neutral", "surprised": None},
        ...     overrides={"calm": None}, target_labels=["neutral"])
        {'calm': None, 'surprised': None}
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(own_labels))
    if unknown:
        raise UserError(
            f"corpora.{corpus}.label_map names {unknown}, which {corpus} does not have; "
            f"its labels are {list(own_labels)}. Fix or remove those keys."
        )
    bad_targets = sorted({t for t in overrides.values() if t is not None} - set(target_labels))
    if bad_targets:
        raise UserError(
            f"corpora.{corpus}.label_map maps onto {bad_targets}, which are not in target_labels "
            f"{list(target_labels)}. Map onto one of those, or to null to drop the label."
        )
    mapping: dict[str, str | None] = {}
    for label in own_labels:
        target = overrides[label] if label in overrides else default_map.get(label)
        mapping[label] = target if target in target_labels else None
    return mapping
