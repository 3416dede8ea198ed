from __future__ import annotations

import itertools
from typing import Any

import pytest

from serhpo.errors import UserError
from serhpo.hpo.space import DEFAULT_SEARCH_SPACE, Param, SearchSpace

CONDITIONAL = {
    "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
    "architecture": {"type": "choice", "choices": ["cnn", "mlp", "transformer"]},
    "channels": {"type": "int", "low": 8, "high": 64, "when": {"architecture": "cnn"}},
    "kernel": {"type": "choice", "choices": [3, 5], "when": {"architecture": "cnn"}},
    "dilation": {"type": "int", "low": 1, "high": 4, "grid": [1, 2], "when": {"kernel": 5}},
    "heads": {"type": "choice", "choices": [2, 4], "when": {"architecture": "transformer"}},
}


def test_the_default_is_the_papers_table_2() -> None:
    space = SearchSpace.from_config(None)
    assert space == SearchSpace.from_config(DEFAULT_SEARCH_SPACE)
    assert space.names == ("lr", "epochs", "unfreeze", "maxlen")
    assert (space["lr"].type, space["lr"].low, space["lr"].high) == ("loguniform", 1e-6, 1e-3)
    assert (space["epochs"].type, space["epochs"].low, space["epochs"].high) == ("int", 1, 10)
    assert (space["unfreeze"].low, space["unfreeze"].high) == (0, 5)
    assert space["maxlen"].choices == (32000, 48000, 64000, 80000, 112000, 160000)
    assert space.columns == ("param_lr", "param_epochs", "param_unfreeze", "param_maxlen")


def test_default_grids_are_derived_from_the_bounds() -> None:
    space = SearchSpace.from_config(None)
    assert space["lr"].grid_values(3) == (1e-6, 3.16e-5, 1e-3)
    assert space["lr"].grid_values(4) == (1e-6, 1e-5, 1e-4, 1e-3)  # log-spaced
    assert space["epochs"].grid_values(3) == (1, 6, 10)
    assert space["maxlen"].grid_values(3) == space["maxlen"].choices
    uniform = Param("dropout", "uniform", low=0.0, high=0.5)
    assert uniform.grid_values(3) == (0.0, 0.25, 0.5)
    assert Param("k", "int", low=0, high=2).grid_values(5) == (0, 1, 2)  # no duplicates


def test_the_grid_is_the_ordered_cartesian_product() -> None:
    space = SearchSpace.from_config(
        {
            "lr": {"type": "loguniform", "low": 1e-5, "high": 1e-3, "grid": [1e-5, 1e-4]},
            "epochs": {"type": "int", "low": 1, "high": 10, "grid": [2, 4, 8]},
            "maxlen": {"type": "choice", "choices": [32000, 64000]},
        }
    )
    expected = [
        {"lr": lr, "epochs": e, "maxlen": m}
        for lr, e, m in itertools.product([1e-5, 1e-4], [2, 4, 8], [32000, 64000])
    ]
    assert space.grid(3) == expected
    assert len(SearchSpace.from_config(None).grid(3)) == 3 * 3 * 3 * 6


def test_conditional_parameters_exist_only_under_their_parent_value() -> None:
    space = SearchSpace.from_config(CONDITIONAL)
    assert space.active_names({"lr": 1e-3, "architecture": "mlp", "channels": 9}) == (
        "lr",
        "architecture",
    )
    assert space.active_names(
        {"architecture": "cnn", "channels": 9, "kernel": 5, "dilation": 2}
    ) == (
        "architecture",
        "channels",
        "kernel",
        "dilation",
    )
    grid = space.grid(2)
    # mlp: 2 lr; transformer: 2 lr x 2 heads; cnn: 2 lr x 2 channels x (kernel 3 + kernel 5 x 2)
    assert len(grid) == 2 + 4 + 2 * 2 * 3
    for point in grid:
        assert space.check(point) == point
    with pytest.raises(ValueError, match="condition is false"):
        space.check({"lr": 1e-3, "architecture": "mlp", "heads": 2})
    with pytest.raises(ValueError, match="missing"):
        space.check({"lr": 1e-3, "architecture": "transformer"})


def test_a_child_declared_before_its_parent_is_ordered_after_it() -> None:
    space = SearchSpace.from_config(
        {
            "channels": {"type": "int", "low": 8, "high": 64, "when": {"architecture": "cnn"}},
            "architecture": {"type": "choice", "choices": ["cnn", "mlp"]},
        }
    )
    assert space.names == ("architecture", "channels")


def test_values_read_back_from_csv_are_coerced_to_the_parameter_type() -> None:
    space = SearchSpace.from_config(
        {**DEFAULT_SEARCH_SPACE, "flag": {"type": "choice", "choices": [True, False]}}
    )
    assert space["maxlen"].coerce("64000") == 64000
    assert space["epochs"].coerce("7") == 7 and isinstance(space["epochs"].coerce("7.0"), int)
    assert space["lr"].coerce(repr(2.5e-5)) == 2.5e-5
    assert space["flag"].coerce("False") is False
    with pytest.raises(ValueError):
        space["maxlen"].coerce("50000")
    with pytest.raises(ValueError):
        space["lr"].coerce("0.5")


BAD: list[tuple[dict[str, Any], list[str]]] = [
    (
        {"lr": {"type": "normal", "low": 0, "high": 1}},
        ["search_space.lr.type", "'normal'", "loguniform"],
    ),
    ({"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-6}}, ["search_space.lr", "low < high"]),
    (
        {"lr": {"type": "loguniform", "low": 0.0, "high": 1e-3}},
        ["search_space.lr.low", "low > 0", "uniform"],
    ),
    (
        {"lr": {"type": "uniform", "low": "a", "high": 1}},
        ["search_space.lr.low", "'a'", "finite number"],
    ),
    (
        {"epochs": {"type": "int", "low": 1.5, "high": 10}},
        ["search_space.epochs", "integer bounds"],
    ),
    (
        {"maxlen": {"type": "choice", "choices": [16000]}},
        ["search_space.maxlen.choices", "at least two"],
    ),
    (
        {"maxlen": {"type": "choice", "choices": [1, 1]}},
        ["search_space.maxlen.choices", "duplicates"],
    ),
    ({"maxlen": {"type": "choice", "choices": [1, "a"]}}, ["mixed types"]),
    (
        {"lr": {"type": "loguniform", "low": 1e-6, "high": 1e-3, "step": 2}},
        ["search_space.lr", "'step'", "allowed"],
    ),
    (
        {"lr": {"type": "loguniform", "low": 1e-6, "high": 1e-3, "grid": [1e-2]}},
        ["search_space.lr.grid", "0.01", "within"],
    ),
    (
        {"maxlen": {"type": "choice", "choices": [1, 2], "grid": [3]}},
        ["search_space.maxlen.grid", "one of [1, 2]"],
    ),
    ({"x-y": {"type": "uniform", "low": 0, "high": 1}}, ["search_space.x-y", "letters, digits"]),
    ({"lr": [0.001]}, ["search_space.lr", "[0.001]", "mapping"]),
    ([1, 2], ["search_space", "mapping of parameter name"]),
    (
        {"channels": {"type": "int", "low": 1, "high": 4, "when": {"arch": "cnn"}}},
        ["search_space.channels.when", "'arch'", "not in search_space"],
    ),
    (
        {
            "depth": {"type": "int", "low": 1, "high": 4},
            "width": {"type": "int", "low": 1, "high": 4, "when": {"depth": 2}},
        },
        ["search_space.width.when", "choice parameter"],
    ),
    (
        {
            "arch": {"type": "choice", "choices": ["cnn", "mlp"]},
            "width": {"type": "int", "low": 1, "high": 4, "when": {"arch": "rnn"}},
        },
        ["search_space.width.when.arch", "'rnn'", "['cnn', 'mlp']"],
    ),
    (
        {
            "arch": {"type": "choice", "choices": ["cnn", "mlp"]},
            "width": {"type": "int", "low": 1, "high": 4, "when": {"arch": "cnn", "lr": 1}},
        },
        ["search_space.width.when", "one condition"],
    ),
    (
        {
            "a": {"type": "choice", "choices": [1, 2], "when": {"b": 1}},
            "b": {"type": "choice", "choices": [1, 2], "when": {"a": 1}},
        },
        ["cycle"],
    ),
]


@pytest.mark.parametrize(("definition", "fragments"), BAD)
def test_a_bad_definition_is_rejected_naming_the_key(definition: Any, fragments: list[str]) -> None:
    with pytest.raises(UserError) as raised:
        SearchSpace.from_config(definition)
    for fragment in fragments:
        assert fragment in str(raised.value)


def test_a_parameter_is_pinned_by_type_fixed_or_a_plain_value() -> None:
    space = SearchSpace.from_config(
        {"lr": {"type": "uniform", "low": 0.0, "high": 1.0}, "maxlen": 48000,
         "arch": {"type": "fixed", "value": "cnn"}}
    )  # fmt: skip
    assert space.fixed_values() == {"maxlen": 48000, "arch": "cnn"}
    assert space["maxlen"].grid_values(5) == (48000,)
    assert space.check({"lr": 0.5, "maxlen": "48000", "arch": "cnn"})["maxlen"] == 48000
    with pytest.raises(ValueError):
        space.check({"lr": 0.5, "maxlen": 32000, "arch": "cnn"})
    assert len(space.grid(3)) == 3
    with pytest.raises(UserError, match="value"):
        SearchSpace.from_config({"maxlen": {"type": "fixed", "value": [1, 2]}})


def test_an_override_of_another_type_ignores_the_earlier_definitions_keys() -> None:
    # Config files merge key by key: pinning {type: int, low: 1, high: 10} with
    # {type: fixed, value: 3} leaves low and high beside the pin; a typo is still refused.
    space = SearchSpace.from_config(
        {"epochs": {"type": "fixed", "value": 3, "low": 1, "high": 10},
         "maxlen": {"type": "int", "low": 16000, "high": 64000, "choices": [1, 2]}}
    )  # fmt: skip
    assert space.fixed_values() == {"epochs": 3}
    assert (space["maxlen"].low, space["maxlen"].high) == (16000, 64000)
    with pytest.raises(UserError, match=r"unknown key\(s\) \['hihg'\]"):
        SearchSpace.from_config({"lr": {"type": "uniform", "low": 0, "high": 1, "hihg": 2}})
