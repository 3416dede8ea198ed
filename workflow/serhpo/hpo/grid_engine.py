"""Grid search: the cartesian product of every parameter's grid values (the paper's baseline).

Points are proposed in a fixed order (the first parameter varies slowest), so two grid studies
with the same space try the same trials in the same order; a resumed study skips the points
already in trials.csv (workers sharing the study skip those running elsewhere too). The study
ends when the grid does, or earlier at its budget.

Example:
    >>> from serhpo.hpo.settings import HpoSettings
    >>> from serhpo.hpo.space import SearchSpace
    >>> space = SearchSpace.from_config({"lr": {"type": "loguniform", "low": 1e-5, "high": 1e-3}})
    >>> settings = HpoSettings.from_config({"hpo": {"grid_points": 3}}, engine="grid")
    >>> engine = GridEngine(space, settings)
    >>> [engine.ask().params["lr"] for _ in range(3)], engine.ask()
    ([1e-05, 0.0001, 0.001], None)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from serhpo.hpo.engine import Engine, FinishedTrial, Proposal
from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.trial import TrialStatus


def grid_key(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A hashable identity of a grid point that survives a round trip through trials.csv."""
    return tuple(sorted((name, repr(value)) for name, value in params.items()))


class GridEngine(Engine):
    """Proposes each grid point once, in order."""

    name = "grid"
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
        self.points = space.grid(settings.grid_points)
        self._done: set[tuple[tuple[str, str], ...]] = set()
        self._next = 0

    def ask(self) -> Proposal | None:
        while self._next < len(self.points):
            point = self.points[self._next]
            self._next += 1
            if grid_key(point) not in self._done:
                self._done.add(grid_key(point))
                return Proposal(params=dict(point), engine_trial=self._next - 1)
        return None

    def tell(
        self, proposal: Proposal, *, value: float | None, status: TrialStatus, seconds: float
    ) -> None:
        """Nothing to learn: the grid is fixed."""

    def replay(self, finished: Sequence[FinishedTrial]) -> None:
        self._done.update(grid_key(trial.params) for trial in finished)

    def sync(self, finished: Sequence[FinishedTrial], running: Sequence[Any]) -> None:
        """Points logged or running elsewhere are done; the rest are proposed in grid order."""
        self._done = {grid_key(t.params) for t in finished} | {grid_key(c.params) for c in running}
        self._next = 0
