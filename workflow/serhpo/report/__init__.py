"""The report stage: the paper's Tables 3-6 and the figures, from a run's studies and evaluations.

Modules: :mod:`~serhpo.report.inputs` (reading and checking the inputs),
:mod:`~serhpo.report.tables` (numbers), :mod:`~serhpo.report.markdown` (their rendering),
:mod:`~serhpo.report.plots`, :mod:`~serhpo.report.paper` (the paper's figures) and
:mod:`~serhpo.report.stage` (``serhpo report``).

Example:
    $ serhpo report --trials results/hpo/*/trials.csv --evals results/eval/*/*.json \\
        --config config.yaml --out results/
"""

from serhpo.report.stage import add_arguments, build_report, run

__all__ = ["add_arguments", "build_report", "run"]
