"""Hyper-parameter optimisation: one search space, five engines, one study loop.

- :mod:`serhpo.hpo.space`: the search space, parsed once from config's ``search_space``.
- :mod:`serhpo.hpo.engine`: what an engine does (ask, tell, replay) and how one is made;
  one module per engine: ``ax_engine``, ``hyperopt_engine``, ``optuna_engine``,
  ``grid_engine``, ``random_engine``.
- :mod:`serhpo.hpo.study`: the shared loop (budgets, timing, failures, pruning, resumption);
  :mod:`serhpo.hpo.workers`: parallel workers on one study. The ``serhpo hpo`` stage, which
  chooses the objective, is :mod:`serhpo.tune` (the package imports no objective).
- :mod:`serhpo.hpo.trials_log`, :mod:`serhpo.hpo.pareto`, :mod:`serhpo.hpo.pruning`,
  :mod:`serhpo.hpo.settings`, :mod:`serhpo.hpo.synthetic_objective`: the pieces it uses.

Parallel trials (``hpo.n_workers`` > 1): Optuna (processes share a journal file). Random and
grid studies can be partitioned by hand (several studies, other seeds or grids); Ax and
Hyperopt run one trial after another.
"""
