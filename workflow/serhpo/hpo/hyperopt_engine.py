"""Hyperopt: TPE driven one trial at a time through a ``hyperopt.Trials`` object.

``tpe.suggest`` proposes a trial document from the trials observed so far; the study runs it
and fills in the result. A restarted study re-feeds the trials of trials.csv as documents.
Each proposal is seeded by (seed, trial id), so a resumed study proposes what an
uninterrupted one would have. Conditional parameters become ``hp.choice`` branches.

Example:
    >>> from serhpo.hpo.settings import HpoSettings
    >>> from serhpo.hpo.space import DEFAULT_SEARCH_SPACE, SearchSpace
    >>> space = SearchSpace.from_config(DEFAULT_SEARCH_SPACE)
    >>> engine = HyperoptEngine(space, HpoSettings.from_config({}, engine="hyperopt"))
    >>> proposal = engine.ask()
    >>> engine.tell(proposal, value=0.5, status=TrialStatus.COMPLETE, seconds=3.0)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hyperopt import JOB_STATE_DONE, STATUS_FAIL, STATUS_OK, Domain, Trials, hp, tpe

from serhpo.hpo.engine import Engine, FinishedTrial, Proposal, derived_seed
from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import Param, Scalar, SearchSpace
from serhpo.trial import TrialStatus

#: Hyperopt's own default number of random trials before TPE.
HYPEROPT_STARTUP_DEFAULT = 20


def hyperopt_space(space: SearchSpace) -> dict[str, Any]:
    """Translate the space into Hyperopt expressions; each parameter's label is its name.

    A choice parameter with conditional children becomes an ``hp.choice`` over branches
    that hold the children, so TPE models each child only where it exists.
    """

    def expression(param: Param) -> Any:
        if param.is_categorical:
            assert param.choices is not None
            branches = [
                {child.name: expression(child) for child in space.children(param.name, choice)}
                for choice in param.choices
            ]
            return hp.choice(param.name, branches)
        assert param.low is not None and param.high is not None
        if param.type == "loguniform":
            return hp.loguniform(param.name, math.log(param.low), math.log(param.high))
        if param.type == "uniform":
            return hp.uniform(param.name, param.low, param.high)
        return hp.uniformint(param.name, int(param.low), int(param.high))

    return {param.name: expression(param) for param in space if param.when is None}


def decode(space: SearchSpace, vals: Mapping[str, list[Any]]) -> dict[str, Scalar]:
    """Turn a Hyperopt trial's ``misc.vals`` (choice indices, floats) into parameters."""
    params: dict[str, Scalar] = {}
    for param in space:
        drawn = vals.get(param.name) or []
        if not drawn:
            continue  # inactive branch
        if param.is_categorical:
            assert param.choices is not None
            params[param.name] = param.choices[int(drawn[0])]
        else:
            params[param.name] = param.coerce(
                round(float(drawn[0])) if param.type == "int" else float(drawn[0])
            )
    return params


def encode(space: SearchSpace, params: Mapping[str, Scalar]) -> dict[str, list[Any]]:
    """The inverse of :func:`decode`: parameters as ``misc.vals`` (empty for inactive ones)."""
    vals: dict[str, list[Any]] = {}
    for param in space:
        if param.name not in params:
            vals[param.name] = []
        elif param.is_categorical:
            assert param.choices is not None
            vals[param.name] = [list(map(repr, param.choices)).index(repr(params[param.name]))]
        else:
            vals[param.name] = [float(params[param.name])]
    return vals


class HyperoptEngine(Engine):
    """Hyperopt's TPE, maximising BCA (Hyperopt minimises, so it sees ``-BCA``)."""

    name = "hyperopt"

    def __init__(
        self,
        space: SearchSpace,
        settings: HpoSettings,
        *,
        state_dir: Path | None = None,
        worker: int = 0,
    ) -> None:
        super().__init__(space, settings, state_dir=state_dir, worker=worker)
        logging.getLogger("hyperopt").setLevel(logging.WARNING)
        self.domain = Domain(_not_called, hyperopt_space(space))
        self.trials = Trials()
        startup = settings.n_startup_trials
        self.n_startup_jobs = HYPEROPT_STARTUP_DEFAULT if startup is None else startup

    def ask(self) -> Proposal:
        (tid,) = self.trials.new_trial_ids(1)
        (doc,) = tpe.suggest(
            [tid],
            self.domain,
            self.trials,
            derived_seed(self.settings.seed, tid),
            n_startup_jobs=self.n_startup_jobs,
        )
        self.trials.insert_trial_doc(doc)
        self.trials.refresh()
        return Proposal(params=decode(self.space, doc["misc"]["vals"]), engine_trial=tid)

    def tell(
        self, proposal: Proposal, *, value: float | None, status: TrialStatus, seconds: float
    ) -> None:
        for doc in self.trials._dynamic_trials:  # the documents Trials keeps (no public lookup)
            if doc["tid"] == proposal.engine_trial:
                doc["state"] = JOB_STATE_DONE
                doc["result"] = _result(value, status)
                break
        self.trials.refresh()

    def replay(self, finished: Sequence[FinishedTrial]) -> None:
        if not finished:
            return
        tids = self.trials.new_trial_ids(len(finished))
        miscs = []
        for tid, trial in zip(tids, finished, strict=True):
            vals = encode(self.space, trial.params)
            idxs = {label: [tid] if drawn else [] for label, drawn in vals.items()}
            miscs.append(
                {"tid": tid, "cmd": self.domain.cmd, "workdir": None, "idxs": idxs, "vals": vals}
            )
        results = [
            _result(t.value if t.status != TrialStatus.FAILED else None, t.status) for t in finished
        ]
        docs = self.trials.new_trial_docs(tids, [None] * len(tids), results, miscs)
        for doc in docs:
            doc["state"] = JOB_STATE_DONE
        self.trials.insert_trial_docs(docs)
        self.trials.refresh()


def _result(value: float | None, status: TrialStatus) -> dict[str, Any]:
    if status == TrialStatus.FAILED or value is None or math.isnan(value):
        return {"status": STATUS_FAIL}
    return {"status": STATUS_OK, "loss": -float(value)}


def _not_called(params: Any) -> float:
    raise AssertionError("the study loop evaluates trials, not Hyperopt")
