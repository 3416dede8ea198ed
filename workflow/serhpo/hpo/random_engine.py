"""Random search: every trial drawn independently from the space (a baseline).

Trial ``i`` is drawn from a generator seeded by (seed, i), and each ask takes the smallest index
not yet run, so a resumed study proposes exactly what an uninterrupted one would have (an
interrupted draw first), and workers sharing a study run the same draws as one worker would.

Example:
    >>> from serhpo.hpo.settings import HpoSettings
    >>> from serhpo.hpo.space import DEFAULT_SEARCH_SPACE, SearchSpace
    >>> space = SearchSpace.from_config(DEFAULT_SEARCH_SPACE)
    >>> a = RandomEngine(space, HpoSettings.from_config({"seed": 4}, engine="random")).ask().params
    >>> a == RandomEngine(space, HpoSettings.from_config({"seed": 4}, engine="random")).ask().params
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from serhpo.hpo.engine import Engine, FinishedTrial, Proposal, derived_seed
from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import Scalar, SearchSpace
from serhpo.trial import TrialStatus


def sample(space: SearchSpace, rng: np.random.Generator) -> dict[str, Scalar]:
    """Draw one assignment: log-uniform, uniform, uniform integer or uniform choice.

    Example:
        >>> from serhpo.hpo.space import DEFAULT_SEARCH_SPACE
        >>> params = sample(SearchSpace.from_config(DEFAULT_SEARCH_SPACE), np.random.default_rng(0))
        >>> sorted(params)
        ['epochs', 'lr', 'maxlen', 'unfreeze']
    """
    params: dict[str, Scalar] = {}
    for param in space:
        if not space.is_active(param, params):
            continue
        if param.is_categorical:
            assert param.choices is not None
            params[param.name] = param.choices[int(rng.integers(len(param.choices)))]
            continue
        assert param.low is not None and param.high is not None
        if param.type == "loguniform":
            params[param.name] = float(
                math.exp(rng.uniform(math.log(param.low), math.log(param.high)))
            )
        elif param.type == "uniform":
            params[param.name] = float(rng.uniform(param.low, param.high))
        else:
            params[param.name] = int(rng.integers(int(param.low), int(param.high) + 1))
    return params


class RandomEngine(Engine):
    """Independent uniform draws (log-uniform for ``loguniform``)."""

    name = "random"
    parallel = True

    def __init__(
        self,
        space: SearchSpace,
        settings: HpoSettings,
        *,
        state_dir: Path | None = None,
        worker: int = 0,
    ) -> None:
        super().__init__(space, settings, state_dir=state_dir, worker=worker)
        self._taken: set[int] = set()

    def ask(self) -> Proposal:
        index = next(i for i in range(len(self._taken) + 1) if i not in self._taken)
        self._taken.add(index)
        # The draw depends on the index only (not on the worker): any split of the work
        # between workers runs the same trials.
        rng = np.random.default_rng(derived_seed(self.settings.seed, 0, index))
        return Proposal(params=sample(self.space, rng), engine_trial=index)

    def tell(
        self, proposal: Proposal, *, value: float | None, status: TrialStatus, seconds: float
    ) -> None:
        """Nothing to learn: draws are independent."""

    def replay(self, finished: Sequence[FinishedTrial]) -> None:
        self.sync(finished, ())

    def sync(self, finished: Sequence[FinishedTrial], running: Sequence[Any]) -> None:
        """Draws logged or running elsewhere are taken; the others are proposed, smallest first."""
        self._taken = {
            i if trial.engine_trial is None else trial.engine_trial
            for i, trial in enumerate(finished)
        } | {claim.engine_trial for claim in running if claim.engine_trial is not None}
