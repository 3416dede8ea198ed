"""The hyper-parameters of one federated run, typed (config ``federated.training``).

The reference study (FedAvg for SER) grid-searched the learning rate {0.1, 0.01, 0.001},
local epochs {1, 3, 5}, global rounds {50..200}, batch size {8..64} and client fraction
{0.1..1}; these are the keys here, in the same search-space format as the centralised study
(config ``federated.search_space``). Keys that are not federated settings are the model
family's parameters (``arch``, ``dropout``, ...). Defaults and ranges are the schema's
(:func:`serhpo.config.section_values`); this class has neither.

Example:
    >>> settings, model_params = FederatedSettings.split_params(
    ...     {"lr": 0.1, "rounds": 20, "client_fraction": 0.5, "arch": "mlp"})
    >>> settings.rounds, settings.client_fraction, settings.batch_size, model_params
    (20, 0.5, 16, {'arch': 'mlp'})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from serhpo.config import coerce, section_values


@dataclass(frozen=True)
class FederatedSettings:
    """One federated run: FedAvg over ``rounds``, each client training locally with SGD.

    Attributes:
        lr: the clients' SGD learning rate (the reference grid: 0.1, 0.01, 0.001).
        rounds: global FedAvg rounds.
        local_epochs: epochs a sampled client trains on its own data per round.
        batch_size: the clients' local batch size.
        client_fraction: share of the clients sampled per round (at least ``min_clients``).
        min_clients: the fewest clients a round samples.
        momentum: SGD momentum of the local optimiser (reset every round: clients are
            stateless, as in FedAvg).
        weight_decay: SGD weight decay.
        maxlen: truncate utterances to this many samples (``None``: keep them whole).
        padding: zero-pad shorter utterances to ``maxlen``.
        eval_batch_size: utterances per forward pass when the server scores the model.
        threads: torch threads per client process (1: the clients' CPU time is their work).
        deterministic: ask torch for deterministic algorithms.
    """

    lr: float
    rounds: int
    local_epochs: int
    batch_size: int
    client_fraction: float
    min_clients: int
    momentum: float
    weight_decay: float
    maxlen: int | None
    padding: bool
    eval_batch_size: int
    threads: int
    deterministic: bool

    @classmethod
    def field_names(cls) -> set[str]:
        """The names of the federated keys."""
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def split_params(cls, params: Mapping[str, Any]) -> tuple[FederatedSettings, dict[str, Any]]:
        """Separate the federated keys (completed and validated by the schema) from the rest.

        Raises:
            UserError: for a value of the wrong type or out of range.
        """
        names = cls.field_names()
        values = section_values(
            "federated.training",
            {k: v for k, v in params.items() if k in names},
            fix="Fix federated.training or federated.search_space in config.yaml.",
        )
        model_params = {k: coerce(v, {}) for k, v in params.items() if k not in names}
        return cls(**values), model_params

    def clients_per_round(self, n_clients: int) -> int:
        """How many of ``n_clients`` a round samples (Flower's FedAvg rule).

        Example:
            >>> FederatedSettings.split_params({"client_fraction": 0.1})[0].clients_per_round(8)
            1
        """
        return min(n_clients, max(int(n_clients * self.client_fraction), self.min_clients))
