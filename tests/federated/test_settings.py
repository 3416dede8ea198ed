from __future__ import annotations

import numpy as np
import pytest

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
        ({"rounds": 2.5}, "not a whole number"),
        ({"client_fraction": 0.0}, "client_fraction must be in (0, 1]"),
        ({"client_fraction": 1.5}, "client_fraction must be in (0, 1]"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"local_epochs": 0}, "local_epochs must be at least 1"),
        ({"lr": "fast"}, "federated key 'lr' got 'fast'"),
    ],
)
def test_bad_values_name_the_key_and_where_to_fix_it(params: dict, message: str) -> None:
    with pytest.raises(UserError, match="federated") as error:
        FederatedSettings.split_params(params)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("fraction", "minimum", "clients", "expected"),
    [(0.1, 1, 8, 1), (0.5, 1, 8, 4), (1.0, 1, 8, 8), (0.1, 3, 8, 3), (0.5, 10, 8, 8)],
)
def test_clients_per_round_follows_fedavg(fraction, minimum, clients, expected) -> None:
    settings = FederatedSettings(client_fraction=fraction, min_clients=minimum)
    assert settings.clients_per_round(clients) == expected
