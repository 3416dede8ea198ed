"""Ax: Gaussian-process Bayesian optimisation after ``n_sobol`` quasi-random Sobol trials.

Driven through ``ax.api.client.Client`` (Ax 1.3): ``get_next_trials(max_trials=1)`` proposes,
``complete_trial`` / ``mark_trial_failed`` observe. A restarted study re-attaches the trials
of trials.csv (``attach_trial``), which count towards the Sobol start, and reseeds the
client from (seed, trials so far) so that it does not repeat the first Sobol points.
Conditional parameters use Ax's hierarchical search space (``dependent_parameters``).

Example:
    >>> from serhpo.hpo.settings import HpoSettings
    >>> from serhpo.hpo.space import DEFAULT_SEARCH_SPACE, SearchSpace
    >>> settings = HpoSettings.from_config({}, engine="ax")
    >>> engine = AxEngine(SearchSpace.from_config(DEFAULT_SEARCH_SPACE), settings)
    >>> proposal = engine.ask()  # the centre of the space, then Sobol points
    >>> engine.tell(proposal, value=0.5, status=TrialStatus.COMPLETE, seconds=3.0)
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from serhpo.hpo.engine import Engine, FinishedTrial, Proposal, derived_seed
from serhpo.hpo.settings import METRIC, HpoSettings
from serhpo.hpo.space import Param, SearchSpace
from serhpo.trial import TrialStatus

with warnings.catch_warnings():
    # Ax 1.3's own imports trip deprecations inside Ax and torch.jit; nothing a user can act on.
    warnings.simplefilter("ignore", DeprecationWarning)
    from ax.api.client import Client
    from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

#: Ax's generation strategy preset: "fast" fits a GP with expected improvement.
AX_METHOD = "fast"


def ax_parameters(space: SearchSpace) -> list[RangeParameterConfig | ChoiceParameterConfig]:
    """Translate the space into Ax parameter configs (pinned parameters stay out of Ax:
    the engine adds their values to each proposal).

    Example:
        >>> from serhpo.hpo.space import DEFAULT_SEARCH_SPACE
        >>> ax_parameters(SearchSpace.from_config(DEFAULT_SEARCH_SPACE))[0].scaling
        'log'
    """
    return [_ax_parameter(param, space) for param in space if param.type != "fixed"]


def _ax_parameter(param: Param, space: SearchSpace) -> RangeParameterConfig | ChoiceParameterConfig:
    if param.type != "choice":
        assert param.low is not None and param.high is not None
        is_int = param.type == "int"
        return RangeParameterConfig(
            name=param.name,
            bounds=(int(param.low), int(param.high)) if is_int else (param.low, param.high),
            parameter_type="int" if is_int else "float",
            scaling="log" if param.type == "loguniform" else "linear",
        )
    assert param.choices is not None
    kinds = {type(choice) for choice in param.choices}
    if kinds == {bool}:
        parameter_type = "bool"
    elif kinds == {str}:
        parameter_type = "str"
    elif kinds == {int}:
        parameter_type = "int"
    else:
        parameter_type = "float"
    dependents = {
        choice: [child.name for child in space.children(param.name, choice)]
        for choice in param.choices
    }
    return ChoiceParameterConfig(
        name=param.name,
        values=list(param.choices),
        parameter_type=parameter_type,
        is_ordered=parameter_type in ("int", "float"),
        dependent_parameters={k: v for k, v in dependents.items() if v} or None,
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Ax's and BoTorch's warnings for one call: pandas deprecations inside Ax, and
    BoTorch's notes when an acquisition restart stops early (it retries by itself)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class AxEngine(Engine):
    """Ax's GP-EI after a Sobol start (Sobol and GP seeded)."""

    name = "ax"

    def __init__(
        self,
        space: SearchSpace,
        settings: HpoSettings,
        *,
        state_dir: Path | None = None,
        worker: int = 0,
    ) -> None:
        super().__init__(space, settings, state_dir=state_dir, worker=worker)
        for name in ("ax", "botorch", "pyro"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.client = self._client(n_existing=0)

    def _client(self, *, n_existing: int) -> Client:
        seed = (
            self.settings.seed if n_existing == 0 else derived_seed(self.settings.seed, n_existing)
        )
        client = Client(random_seed=seed)
        with _quiet():
            client.configure_experiment(parameters=ax_parameters(self.space), name="serhpo")
            client.configure_optimization(objective=METRIC)
            client.configure_generation_strategy(
                method=AX_METHOD,
                initialization_budget=self.settings.n_sobol,
                initialization_random_seed=seed,
            )
        return client

    def ask(self) -> Proposal:
        with _quiet():
            ((index, params),) = self.client.get_next_trials(max_trials=1).items()
        return Proposal(
            params=self.space.check({**params, **self.space.fixed_values()}), engine_trial=index
        )

    def tell(
        self, proposal: Proposal, *, value: float | None, status: TrialStatus, seconds: float
    ) -> None:
        assert proposal.engine_trial is not None
        self._observe(proposal.engine_trial, value, status)

    def _observe(self, index: int, value: float | None, status: TrialStatus) -> None:
        with _quiet():
            self._observe_loudly(index, value, status)

    def _observe_loudly(self, index: int, value: float | None, status: TrialStatus) -> None:
        if status == TrialStatus.FAILED or value is None:
            self.client.mark_trial_failed(index, failed_reason=str(status))
        else:
            self.client.complete_trial(index, raw_data={METRIC: float(value)})

    def replay(self, finished: Sequence[FinishedTrial]) -> None:
        if not finished:
            return
        self.client = self._client(n_existing=len(finished))
        for trial in finished:
            with _quiet():
                fixed = self.space.fixed_values()
                searched = {k: v for k, v in trial.params.items() if k not in fixed}
                index = self.client.attach_trial(parameters=searched)
            value = None if trial.status == TrialStatus.FAILED else trial.value
            self._observe(index, value, trial.status)
