import pytest

from serhpo.corpora import RAVDESS
from serhpo.errors import UserError
from serhpo.labels import resolve_label_map

TARGETS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
RAVDESS_LABELS = list(RAVDESS.labels)
RAVDESS_DEFAULT = RAVDESS.default_label_map


def resolve(overrides=None, targets=TARGETS):
    return resolve_label_map(
        corpus="ravdess",
        own_labels=RAVDESS_LABELS,
        default_map=RAVDESS_DEFAULT,
        overrides=overrides,
        target_labels=targets,
    )


def test_defaults_drop_surprised_and_map_calm() -> None:
    mapping = resolve()
    assert mapping["surprised"] is None
    assert mapping["calm"] == "neutral"
    assert mapping["happy"] == "happiness"


def test_config_overrides_one_label() -> None:
    assert resolve({"calm": None})["calm"] is None
    assert resolve({"surprised": "happiness"})["surprised"] == "happiness"


def test_a_shorter_target_set_drops_labels_outside_it() -> None:
    mapping = resolve(targets=["anger", "neutral"])
    assert {k for k, v in mapping.items() if v} == {"angry", "neutral", "calm"}


def test_unknown_own_label_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(UserError, match=r"\['clam'\].*its labels are"):
        resolve({"clam": "neutral"})


def test_unknown_target_is_refused() -> None:
    with pytest.raises(UserError, match=r"\['joy'\].*not in target_labels"):
        resolve({"happy": "joy"})
