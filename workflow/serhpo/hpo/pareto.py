"""The trade-off between validation BCA (higher is better) and a trial's cost (lower is better).

The cost is the trial's wall seconds, or with ``hpo.multi_objective.cost: cpu_seconds`` the CPU
seconds its objective reported (the federated trainer's clients). Computed from trials.csv for
every engine (Optuna searches it directly when ``hpo.multi_objective.enabled``): pareto.csv
holds the non-dominated complete trials, pareto.png plots every trial with the front.

Example:
    >>> from serhpo.trial import TrialStatus
    >>> trials = [
    ...     FinishedTrial(0, {}, 0.9, TrialStatus.COMPLETE, trial_seconds=50.0),
    ...     FinishedTrial(1, {}, 0.8, TrialStatus.COMPLETE, trial_seconds=10.0),
    ...     FinishedTrial(2, {}, 0.7, TrialStatus.COMPLETE, trial_seconds=20.0),
    ... ]
    >>> [t.trial for t in pareto_front(trials)]
    [1, 0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from serhpo.hpo.engine import FinishedTrial
from serhpo.hpo.space import SearchSpace
from serhpo.hpo.trials_log import TrialsLog
from serhpo.trial import TrialStatus

#: Axis labels of the costs (``hpo.multi_objective.cost``).
COST_LABELS = {"trial_seconds": "trial seconds", "cpu_seconds": "CPU seconds"}


def dominates(a: FinishedTrial, b: FinishedTrial, *, cost: str = "trial_seconds") -> bool:
    """True when ``a`` is at least as good as ``b`` on both objectives and better on one."""
    a_cost, b_cost = a.cost(cost), b.cost(cost)
    return a.value >= b.value and a_cost <= b_cost and (a.value > b.value or a_cost < b_cost)


def pareto_front(
    trials: Sequence[FinishedTrial], *, cost: str = "trial_seconds"
) -> list[FinishedTrial]:
    """The complete trials that no other complete trial dominates, cheapest first.

    Pruned and failed trials are left out: a pruned trial's score is partial.
    """
    complete = [
        t
        for t in trials
        if t.status == TrialStatus.COMPLETE
        and not math.isnan(t.value)
        and not math.isnan(t.cost(cost))
    ]
    front = [t for t in complete if not any(dominates(o, t, cost=cost) for o in complete)]
    return sorted(front, key=lambda t: (t.cost(cost), -t.value, t.trial))


def write_pareto(
    out_dir: Path,
    trials: Sequence[FinishedTrial],
    space: SearchSpace,
    *,
    title: str = "",
    cost: str = "trial_seconds",
) -> list[FinishedTrial]:
    """Write ``pareto.csv`` (trials.csv's columns, front rows only) and ``pareto.png``.

    Returns:
        The front.
    """
    front = pareto_front(trials, cost=cost)
    TrialsLog(out_dir / "pareto.csv", space).write(front)
    plot_pareto(out_dir / "pareto.png", trials, front, title=title, cost=cost)
    return front


def plot_pareto(
    path: Path,
    trials: Sequence[FinishedTrial],
    front: Sequence[FinishedTrial],
    *,
    title: str = "",
    cost: str = "trial_seconds",
) -> None:
    """Scatter every trial (cost, BCA) by status and draw the front as a step line."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on cluster nodes
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    styles = {
        TrialStatus.COMPLETE: ("tab:blue", "complete"),
        TrialStatus.PRUNED: ("tab:orange", "pruned"),
    }
    for status, (color, label) in styles.items():
        shown = [t for t in trials if t.status == status and not math.isnan(t.value)]
        if shown:
            axes.scatter(
                [t.cost(cost) for t in shown],
                [t.value for t in shown],
                s=18,
                color=color,
                alpha=0.6,
                label=label,
            )
    if front:
        axes.step(
            [t.cost(cost) for t in front],
            [t.value for t in front],
            where="post",
            color="black",
            linewidth=1.2,
            label="Pareto front",
        )
        axes.scatter([t.cost(cost) for t in front], [t.value for t in front], s=30, color="black")
    axes.set_xlabel(COST_LABELS.get(cost, cost))
    axes.set_ylabel("validation BCA")
    axes.set_title(title or f"Validation BCA against {COST_LABELS.get(cost, cost)}")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
