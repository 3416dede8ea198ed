"""Federated training (FedAvg on Flower's simulation) with each training speaker as a client.

- :mod:`serhpo.federated.settings`: the federated hyper-parameters (rounds, client fraction,
  local epochs, local batch size, learning rate) and their checks;
- :mod:`serhpo.federated.clients`: one shard of cached features per speaker, written once per
  run for the simulation's client processes;
- :mod:`serhpo.federated.simulation`: the Flower ``ClientApp`` and ``ServerApp`` and
  :func:`~serhpo.federated.simulation.fit_federated`, the federated counterpart of
  :func:`serhpo.trainer.fit`;
- :mod:`serhpo.federated.objective`: the HPO objective (``serhpo hpo --objective federated``);
- :mod:`serhpo.federated.evaluate`: ``serhpo fl-evaluate``, the best and the cheapest
  near-best configurations retrained and scored on the test speakers;
- :mod:`serhpo.federated.summary`: ``serhpo fl-report``, the Pareto front of all engines as a
  table and a plot.
"""
