from __future__ import annotations

import itertools

from serhpo.hpo.engine import FinishedTrial
from serhpo.hpo.grid_engine import GridEngine, grid_key
from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.trial import TrialStatus

SPACE = SearchSpace.from_config(
    {
        "lr": {"type": "loguniform", "low": 1e-5, "high": 1e-3},
        "epochs": {"type": "int", "low": 1, "high": 10, "grid": [2, 8]},
        "maxlen": {"type": "choice", "choices": [32000, 80000]},
    }
)


def drain(engine: GridEngine) -> list[dict]:
    proposals = []
    while (proposal := engine.ask()) is not None:
        proposals.append(proposal.params)
    return proposals


def test_the_engine_proposes_each_grid_point_once_in_order_then_stops() -> None:
    proposals = drain(
        GridEngine(SPACE, HpoSettings.from_config({"hpo": {"grid_points": 3}}, engine="grid"))
    )
    expected = [
        {"lr": lr, "epochs": e, "maxlen": m}
        for lr, e, m in itertools.product([1e-5, 1e-4, 1e-3], [2, 8], [32000, 80000])
    ]
    assert proposals == expected


def test_replay_skips_points_already_run() -> None:
    engine = GridEngine(SPACE, HpoSettings.from_config({}, engine="grid"))
    done = SPACE.grid(3)[:5]
    engine.replay([FinishedTrial(i, p, 0.5, TrialStatus.COMPLETE) for i, p in enumerate(done)])
    rest = drain(engine)
    assert len(rest) == 12 - 5
    assert {grid_key(p) for p in rest}.isdisjoint({grid_key(p) for p in done})
