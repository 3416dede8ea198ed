"""Random search: every trial drawn independently from the space (a baseline).

Trial ``i`` is drawn from a generator seeded by (seed, i), so a resumed study proposes exactly
what an uninterrupted one would have.

Example:
    >>> from serhpo.hpo.settings import HpoSettings
    >>> from serhpo.hpo.space import DEFAULT_SEARCH_SPACE, SearchSpace
    >>> space = SearchSpace.from_config(DEFAULT_SEARCH_SPACE)
    >>> a = RandomEngine(space, HpoSettings(engine="random", seed=4)).ask().params
    >>> a == RandomEngine(space, HpoSettings(engine="random", seed=4)).ask().params
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

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
        if param.type == "choice":
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

    def __init__(
        self,
        space: SearchSpace,
        settings: HpoSettings,
        *,
        state_dir: Path | None = None,
        worker: int = 0,
    ) -> None:
        super().__init__(space, settings, state_dir=state_dir, worker=worker)
        self._count = 0

    def ask(self) -> Proposal:
        rng = np.random.default_rng(derived_seed(self.settings.seed, self.worker, self._count))
        self._count += 1
        return Proposal(params=sample(self.space, rng), engine_trial=self._count - 1)

    def tell(
        self, proposal: Proposal, *, value: float | None, status: TrialStatus, seconds: float
    ) -> None:
        """Nothing to learn: draws are independent."""

    def replay(self, finished: Sequence[FinishedTrial]) -> None:
        self._count = len(finished)
