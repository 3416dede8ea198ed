from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from serhpo.config import load_schema
from serhpo.errors import UserError
from serhpo.federated.settings import FederatedSettings


def test_federated_keys_are_converted_and_the_rest_go_to_the_model() -> None:
    settings, model = FederatedSettings.split_params(
        {"lr": np.float64(0.1), "rounds": 20.0, "local_epochs": np.int64(3), "arch": "mlp",
         "client_fraction": 0.25, "maxlen": "null", "padding": "off"}
    )  # fmt: skip
    assert (settings.lr, settings.rounds, settings.local_epochs) == (0.1, 20, 3)
    assert isinstance(settings.rounds, int) and settings.maxlen is None and not settings.padding
    assert model == {"arch": "mlp"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"rounds": 2.5}, "rounds: 2.5 is not of type 'integer'"),
        ({"client_fraction": 0.0}, "client_fraction: 0.0 is less than or equal to the minimum"),
        ({"client_fraction": 1.5}, "client_fraction: 1.5 is greater than the maximum of 1"),
        ({"lr": -1.0}, "lr: -1.0 is less than or equal to the minimum of 0"),
        ({"local_epochs": 0}, "local_epochs: 0 is less than the minimum of 1"),
        ({"lr": "fast"}, "lr: 'fast' is not of type 'number'"),
    ],
)
def test_bad_values_name_the_key_and_where_to_fix_it(params: dict, message: str) -> None:
    with pytest.raises(UserError, match="federated.search_space") as error:
        FederatedSettings.split_params(params)
    assert f"config key federated.training.{message}" in str(error.value)


def test_keys_not_given_get_the_schemas_defaults() -> None:
    schema = load_schema()["properties"]["federated"]["properties"]["training"]["properties"]
    settings, _ = FederatedSettings.split_params({})
    assert dataclasses.asdict(settings) == {key: entry["default"] for key, entry in schema.items()}
    assert all(field.default is dataclasses.MISSING for field in dataclasses.fields(settings))


@pytest.mark.parametrize(
    ("fraction", "minimum", "clients", "expected"),
    [(0.1, 1, 8, 1), (0.5, 1, 8, 4), (1.0, 1, 8, 8), (0.1, 3, 8, 3), (0.5, 10, 8, 8)],
)
def test_clients_per_round_follows_fedavg(fraction, minimum, clients, expected) -> None:
    settings, _ = FederatedSettings.split_params(
        {"client_fraction": fraction, "min_clients": minimum}
    )
    assert settings.clients_per_round(clients) == expected
