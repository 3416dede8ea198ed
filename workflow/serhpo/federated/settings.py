"""The hyper-parameters of one federated run, checked and converted.

The reference study (FedAvg for SER) grid-searched the learning rate {0.1, 0.01, 0.001},
local epochs {1, 3, 5}, global rounds {50..200}, batch size {8..64} and client fraction
{0.1..1}; these are the keys here, in the same search-space format as the centralised study
(config ``federated.search_space``). Keys that are not federated settings are the model
family's parameters (``arch``, ``dropout``, ...).

Example:
    >>> settings, model_params = FederatedSettings.split_params(
    ...     {"lr": 0.1, "rounds": 20, "client_fraction": 0.5, "arch": "mlp"})
    >>> settings.rounds, settings.client_fraction, model_params
    (20, 0.5, {'arch': 'mlp'})
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from serhpo.errors import UserError

_INTEGERS = {"rounds", "local_epochs", "batch_size", "min_clients", "eval_batch_size", "threads"}
_FLOATS = {"lr", "client_fraction", "momentum", "weight_decay"}
_BOOLEANS = {"padding", "deterministic"}


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

    lr: float = 0.01
    rounds: int = 20
    local_epochs: int = 1
    batch_size: int = 16
    client_fraction: float = 1.0
    min_clients: int = 1
    momentum: float = 0.0
    weight_decay: float = 0.0
    maxlen: int | None = 48000
    padding: bool = True
    eval_batch_size: int = 64
    threads: int = 1
    deterministic: bool = True

    @classmethod
    def field_names(cls) -> set[str]:
        """The names of the federated keys."""
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def split_params(cls, params: Mapping[str, Any]) -> tuple[FederatedSettings, dict[str, Any]]:
        """Separate the federated keys (checked, converted) from the model family's keys.

        Raises:
            UserError: for a value of the wrong type or out of range.
        """
        names = cls.field_names()
        values = {k: _convert(k, v) for k, v in params.items() if k in names}
        model_params = {k: _plain(v) for k, v in params.items() if k not in names}
        settings = cls(**values)
        settings.check()
        return settings, model_params

    def check(self) -> None:
        """Raise :class:`UserError` for values out of range."""
        problems = []
        if not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"lr must be a positive number, got {self.lr}")
        for name in ("rounds", "local_epochs", "batch_size", "min_clients", "threads"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.client_fraction <= 1:
            problems.append(f"client_fraction must be in (0, 1], got {self.client_fraction}")
        if self.momentum < 0 or self.weight_decay < 0:
            problems.append("momentum and weight_decay must be 0 or more")
        if self.maxlen is not None and self.maxlen < 400:
            problems.append(f"maxlen must be at least 400 samples or null, got {self.maxlen}")
        if problems:
            raise UserError(
                "bad federated configuration: "
                + "; ".join(problems)
                + ". Fix federated.training or federated.search_space in config.yaml."
            )

    def clients_per_round(self, n_clients: int) -> int:
        """How many of ``n_clients`` a round samples (Flower's FedAvg rule).

        Example:
            >>> FederatedSettings(client_fraction=0.1).clients_per_round(8)
            1
        """
        return min(n_clients, max(int(n_clients * self.client_fraction), self.min_clients))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _convert(name: str, value: Any) -> Any:
    value = _plain(value)
    try:
        if name == "maxlen" and value in (None, "none", "null"):
            return None
        if name in _BOOLEANS:
            if isinstance(value, str):
                return value.lower() in {"1", "true", "on", "yes"}
            return bool(value)
        if name in _INTEGERS or name == "maxlen":
            number = float(value)
            if number != round(number):
                raise ValueError(f"{value!r} is not a whole number")
            return int(round(number))
        if name in _FLOATS:
            return float(value)
    except (TypeError, ValueError) as error:
        raise UserError(
            f"federated key {name!r} got {value!r} ({error}). Fix it in config.yaml "
            "(federated.training or federated.search_space)."
        ) from None
    return value
