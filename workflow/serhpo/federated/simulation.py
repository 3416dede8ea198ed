"""FedAvg on Flower's simulation engine: each training speaker is a client.

One run (:func:`fit_federated`):

1. the driver reads the training part's features from the feature cache once and writes one
   shard per speaker (:mod:`serhpo.federated.clients`);
2. Flower's simulation starts one virtual node per speaker (Ray actors run the
   ``ClientApp``); a first ``query`` round has every client fit the model's standardisation
   on its own data, and the server pools the clients' means and variances;
3. ``rounds`` FedAvg rounds: the server samples ``client_fraction`` of the clients (seeded,
   by partition, so the same seed samples the same speakers), each trains ``local_epochs``
   with SGD on its own utterances and returns its weights and its CPU seconds, the server
   averages the weights by the clients' utterance counts, then scores the global model on
   the validation speakers (balanced class accuracy, BCA).

Ray and its client actors start once per process, at the first run, and serve every later
run with the same resources (a study's trials, fl-evaluate's retrainings): starting them
costs seconds, often more than a small run's training. Each run still gets fresh client state
(its own shard file, model and seeds). :func:`shutdown_simulation` stops them (also at exit).

The run's cost is the clients' training CPU seconds, summed: what the federation spends on
devices, without the simulation's own overhead (starting Ray, shipping weights). Its wall
seconds are reported too. A run whose clients diverge (NaN loss) or fail stops and is a
``failed`` trial with the reason; the study's reporter hears the validation BCA after every
round and may stop the run (``pruned``).

Families with one training stage (``logmel``, ``egemaps``) train federated; two-stage
fine-tuning (wav2vec2) is refused.

Example:
    >>> outcome = fit_federated({"lr": 0.05, "rounds": 10, "client_fraction": 0.5,
    ...                          "arch": "mlp"}, data, seed=0)  # doctest: +SKIP
    >>> outcome.result.status, outcome.result.extra["clients"]  # doctest: +SKIP
    (<TrialStatus.COMPLETE: 'complete'>, 6)
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Flower posts usage events to its servers unless told not to; clusters are often offline.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # CPU clients: no GPU env games
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray's usage reports: offline too
# Ray's metrics thread can crash a worker while it shuts down after every run; nothing reads it.
os.environ.setdefault("RAY_enable_metrics_collection", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from flwr.app import (  # noqa: E402
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402
from torch import nn  # noqa: E402

from serhpo.data import Preprocessing, batches, collate  # noqa: E402
from serhpo.errors import UserError  # noqa: E402
from serhpo.federated.clients import (  # noqa: E402
    ClientShard,
    load_shards,
    pool_statistics,
    save_shards,
    speaker_shards,
    statistics_buffers,
)
from serhpo.federated.settings import FederatedSettings  # noqa: E402
from serhpo.hpo.engine import derived_seed  # noqa: E402
from serhpo.metrics import balanced_accuracy, classification_scores  # noqa: E402
from serhpo.models import build_model  # noqa: E402
from serhpo.models.base import SERModel  # noqa: E402
from serhpo.trainer import TrainingData, predict_logits, seed_everything  # noqa: E402
from serhpo.trial import EpochReporter, TrialResult, TrialStatus, never_prune  # noqa: E402

log = logging.getLogger(__name__)

#: Families that train federated: one stage, nothing pretrained to ship every round.
FEDERATED_FAMILIES: tuple[str, ...] = ("logmel", "egemaps")


@dataclass(frozen=True)
class SimulationResources:
    """What Flower's simulation may use on this machine.

    Attributes:
        num_cpus: CPUs Ray may use (``None``: all of this machine's; a SLURM job passes
            its own count).
        client_cpus: CPUs per client process; ``num_cpus / client_cpus`` clients train at once.
        object_store_mb: Ray's shared-memory object store (weights in flight).
    """

    num_cpus: int | None = None
    client_cpus: float = 1.0
    object_store_mb: int = 200

    def backend_config(self) -> dict[str, Any]:
        """Flower's ``backend_config`` for the Ray backend."""
        cpus = self.num_cpus or os.cpu_count() or 1
        return {
            "client_resources": {"num_cpus": self.client_cpus, "num_gpus": 0.0},
            "init_args": {
                "num_cpus": int(cpus),
                "num_gpus": 0,
                "include_dashboard": False,
                "object_store_memory": int(self.object_store_mb) * 1024 * 1024,
            },
        }


@dataclass
class FederatedOutcome:
    """A federated run: its trial result, the global model and the last validation scores.

    Attributes:
        result: status, validation BCA per round, reason; ``extra`` holds ``cpu_seconds``
            (the clients' training), ``seconds`` (wall), ``clients``, ``clients_per_round``
            and ``rounds_run``.
        model: the global model after the last round run.
        settings: the federated settings used.
        scores: :func:`serhpo.metrics.classification_scores` of the last round scored.
    """

    result: TrialResult
    model: SERModel
    settings: FederatedSettings
    scores: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- Ray, kept between runs

#: The Ray session this process keeps between runs: the backend config it was started with
#: (``"key"``) and the pool of client actors (``"pool"``).
_KEPT: dict[str, Any] = {}


def _kept_ray_backend() -> type:
    """Flower's Ray backend, changed to start Ray and its actors once and keep them.

    Flower's simulation builds a backend per run, which starts Ray, creates the client actors
    and, when the run ends, kills them and shuts Ray down. This one reuses the process' Ray
    and actor pool when the backend config is the same, and leaves them running at the end of
    the run. A client actor keeps nothing of a run: every message carries the ``ClientApp``,
    and the clients load their run's shard file and seed themselves per message.
    """
    import ray
    from flwr.server.superlink.fleet.vce.backend.raybackend import RayBackend

    class KeptRayBackend(RayBackend):
        def init_ray(self, backend_config: Any) -> None:
            key = json.dumps(backend_config, sort_keys=True, default=str)
            pool = _KEPT.get("pool")
            if (
                _KEPT.get("key") != key
                or not ray.is_initialized()
                or (pool is not None and len(pool.pool) != pool.num_actors)  # one lost
            ):
                shutdown_simulation()
            super().init_ray(backend_config)
            _KEPT["key"] = key

        def build(self, app_fn: Any) -> None:
            if _KEPT.get("pool") is None:
                super().build(app_fn)
                _KEPT["pool"] = self.pool
            else:
                self.pool = _KEPT["pool"]
                self.app_fn = app_fn

        def terminate(self) -> None:
            """Leave Ray and the actors to the next run (:func:`shutdown_simulation`)."""

    return KeptRayBackend


@contextlib.contextmanager
def _ray_kept() -> Iterator[None]:
    """Within: Flower's simulation uses :func:`_kept_ray_backend`'s backend."""
    from flwr.server.superlink.fleet.vce.backend import raybackend

    original = raybackend.RayBackend
    raybackend.RayBackend = _kept_ray_backend()  # vce_api imports it per run, from here
    try:
        yield
    finally:
        raybackend.RayBackend = original


def shutdown_simulation() -> None:
    """Stop the client actors and Ray kept from earlier runs (nothing when none were kept).

    Example:
        >>> shutdown_simulation()  # the next fit_federated starts Ray afresh
    """
    pool = _KEPT.pop("pool", None)
    _KEPT.pop("key", None)
    if pool is not None:
        with contextlib.suppress(Exception):  # an actor already gone
            pool.terminate_all_actors()
    ray = sys.modules.get("ray")  # imported by an earlier run, or there is nothing to stop
    if ray is not None and ray.is_initialized():
        ray.shutdown()


atexit.register(shutdown_simulation)


# ---------------------------------------------------------------- the clients


client_app = ClientApp()


def _client_model(config: ConfigRecord) -> tuple[SERModel, str]:
    model = build_model(
        str(config["family"]),
        num_classes=int(config["num-classes"]),
        params=json.loads(str(config["model-params"])),
    )
    stage = model.stages[0]
    model.set_stage(stage)
    return model, stage


def _client_shard(config: ConfigRecord, context: Context) -> tuple[int, ClientShard]:
    partition = int(context.node_config["partition-id"])
    return partition, load_shards(Path(str(config["shards"])))[partition]


@client_app.query()
def client_statistics(msg: Message, context: Context) -> Message:
    """Fit the model's standardisation on this client's data; reply with it and its weight."""
    config = msg.content["config"]
    partition, shard = _client_shard(config, context)
    model, stage = _client_model(config)
    model.adapt(stage, shard.items)
    buffers = statistics_buffers(model.state_dict())
    weight = float(sum(int(item.valid_frames) for item in shard.items))
    metrics = MetricRecord(
        {"partition-id": partition, "weight": weight, "num-examples": shard.size}
    )
    content = RecordDict({"arrays": ArrayRecord(buffers), "metrics": metrics})
    return Message(content=content, reply_to=msg)


@client_app.train()
def client_train(msg: Message, context: Context) -> Message:
    """Train the global model on this client's utterances for ``local-epochs`` with SGD."""
    config = msg.content["config"]
    partition, shard = _client_shard(config, context)
    torch.set_num_threads(int(config["threads"]))
    torch.use_deterministic_algorithms(bool(config["deterministic"]), warn_only=True)
    model, stage = _client_model(config)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    server_round = int(config["server-round"])
    seed = derived_seed(int(config["seed"]), server_round, partition)
    torch.manual_seed(seed)  # dropout
    order = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(
        model.trainable_parameters(stage),
        lr=float(config["lr"]),
        momentum=float(config["momentum"]),
        weight_decay=float(config["weight-decay"]),
    )
    loss_function = nn.CrossEntropyLoss()
    model.train()
    total_loss, count, diverged = 0.0, 0, 0
    # One torch thread computes on this thread: its clock leaves out Ray's own threads.
    clock = time.thread_time if int(config["threads"]) == 1 else time.process_time
    cpu_start = clock()
    for _ in range(int(config["local-epochs"])):
        for indices in batches(
            shard.size, batch_size=int(config["batch-size"]), shuffle=True, generator=order
        ):
            features, lengths = collate([shard.items[i] for i in indices])
            loss = loss_function(model(features, lengths, stage=stage), shard.targets[indices])
            if not torch.isfinite(loss):
                diverged = 1
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(indices)
            count += len(indices)
        if diverged:
            break
    cpu_seconds = clock() - cpu_start
    metrics = MetricRecord(
        {
            "num-examples": shard.size,
            "cpu-seconds": cpu_seconds,
            "train-loss": total_loss / max(count, 1),
            "diverged": diverged,
            "partition-id": partition,
        }
    )
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
    return Message(content=content, reply_to=msg)


# ---------------------------------------------------------------- the server


class _TrackedFedAvg(FedAvg):
    """FedAvg with seeded sampling by partition, CPU accounting and a stop switch."""

    def __init__(
        self,
        *,
        partitions: Mapping[int, int],
        settings: FederatedSettings,
        seed: int,
    ) -> None:
        super().__init__(
            fraction_train=settings.client_fraction,
            fraction_evaluate=0.0,  # the server scores the global model on held-out speakers
            min_train_nodes=settings.min_clients,
            min_evaluate_nodes=0,
            min_available_nodes=len(partitions),
        )
        self.partitions = dict(partitions)  # node id -> partition id
        self.settings = settings
        self.seed = seed
        self.cpu_seconds = 0.0
        self.sampled: list[list[int]] = []
        self.problem = ""  # failed: why
        self.stop_reason = ""  # pruned: why
        self.latest: ArrayRecord | None = None  # the last global model aggregated

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        if self.problem or self.stop_reason:
            return []  # the remaining rounds do nothing
        nodes = sorted(self.partitions, key=self.partitions.__getitem__)
        count = self.settings.clients_per_round(len(nodes))
        rng = np.random.default_rng(derived_seed(self.seed, server_round))
        chosen = sorted(rng.choice(len(nodes), size=count, replace=False).tolist())
        self.sampled.append(chosen)
        config["server-round"] = server_round
        record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        return self._construct_messages(record, [nodes[i] for i in chosen], MessageType.TRAIN)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        if not replies:
            return None, None
        for reply in replies:
            if reply.has_error():
                self.problem = self.problem or (
                    f"a client failed in round {server_round}: {reply.error.reason}"
                )
                continue
            metrics = reply.content["metrics"]
            self.cpu_seconds += float(metrics["cpu-seconds"])
            if int(metrics["diverged"]):
                self.problem = self.problem or (
                    f"diverged: a client's loss turned NaN/inf in round {server_round} "
                    f"(lr {self.settings.lr:g}); try a lower learning rate"
                )
        if self.problem:
            return None, None  # keep the last good global model
        # Replies arrive in any order; summing in partition order makes a run repeatable.
        replies.sort(key=lambda reply: int(reply.content["metrics"]["partition-id"]))
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is not None:
            self.latest = arrays
        return arrays, metrics


@dataclass
class _Run:
    """What the server thread hands back to :func:`fit_federated`."""

    history: list[float] = field(default_factory=list)
    scores: dict[str, Any] = field(default_factory=dict)
    arrays: ArrayRecord | None = None
    strategy: _TrackedFedAvg | None = None
    error: BaseException | None = None


def _wait_for_nodes(grid: Grid, count: int, *, timeout: float = 300.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(nodes := list(grid.get_node_ids())) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(nodes)} of {count} simulated clients came up")
        time.sleep(0.2)
    return nodes


def _server_app(
    *,
    model: SERModel,
    stage: str,
    settings: FederatedSettings,
    client_config: dict[str, Any],
    n_clients: int,
    valid: tuple[list[Any], np.ndarray] | None,
    labels: Sequence[str],
    seed: int,
    report: EpochReporter,
    run: _Run,
) -> ServerApp:
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        try:
            random.seed(seed)
            nodes = _wait_for_nodes(grid, n_clients)
            queries = [
                Message(
                    content=RecordDict({"config": ConfigRecord(client_config)}),
                    dst_node_id=node,
                    message_type=MessageType.QUERY,
                )
                for node in nodes
            ]
            replies = list(grid.send_and_receive(queries))
            failed = [reply.error.reason for reply in replies if reply.has_error()]
            if failed or len(replies) != n_clients:
                raise RuntimeError(
                    f"{len(failed)} of {n_clients} clients failed to fit their statistics: "
                    f"{failed[:1]}"
                )
            partitions = {
                reply.metadata.src_node_id: int(reply.content["metrics"]["partition-id"])
                for reply in replies
            }
            pooled = pool_statistics(
                [
                    (
                        reply.content["arrays"].to_torch_state_dict(),
                        float(reply.content["metrics"]["weight"]),
                    )
                    for reply in replies
                ]
            )
            model.load_state_dict(pooled, strict=False)
            strategy = _TrackedFedAvg(partitions=partitions, settings=settings, seed=seed)
            run.strategy = strategy

            def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
                if server_round == 0 or valid is None or strategy.problem:
                    return None
                if strategy.stop_reason or len(run.history) >= server_round:
                    return None  # nothing trained since the last score
                model.load_state_dict(arrays.to_torch_state_dict())
                items, targets = valid
                logits = predict_logits(
                    model, items, stage=stage, batch_size=settings.eval_batch_size
                )
                if not torch.isfinite(logits).all():
                    strategy.problem = (
                        f"diverged: non-finite validation outputs after round {server_round} "
                        f"(lr {settings.lr:g}); try a lower learning rate"
                    )
                    return None
                predictions = logits.argmax(dim=1).numpy()
                bca = balanced_accuracy(targets, predictions)
                run.history.append(bca)
                run.scores = classification_scores(targets, predictions, labels=labels)
                log.info(
                    "round %d/%d: %d clients, valid BCA %.4f, client CPU %.1f s so far",
                    server_round,
                    settings.rounds,
                    len(strategy.sampled[-1]) if strategy.sampled else 0,
                    bca,
                    strategy.cpu_seconds,
                )
                if report(server_round, bca):
                    strategy.stop_reason = f"pruned after round {server_round} (BCA {bca:.3f})"
                return MetricRecord({"valid-bca": bca})

            strategy.latest = ArrayRecord(model.state_dict())
            strategy.start(
                grid=grid,
                initial_arrays=strategy.latest,
                num_rounds=settings.rounds,
                train_config=ConfigRecord(client_config),
                evaluate_fn=evaluate,
            )
            run.arrays = strategy.latest
        except BaseException as error:  # Flower would exit the process; the caller decides
            run.error = error

    return server


def _client_config(
    *,
    shards: Path,
    family: str,
    model_params: Mapping[str, Any],
    num_classes: int,
    settings: FederatedSettings,
    seed: int,
) -> dict[str, Any]:
    return {
        "shards": str(shards),
        "family": family,
        "model-params": json.dumps(dict(model_params), sort_keys=True),
        "num-classes": num_classes,
        "lr": settings.lr,
        "local-epochs": settings.local_epochs,
        "batch-size": settings.batch_size,
        "momentum": settings.momentum,
        "weight-decay": settings.weight_decay,
        "threads": settings.threads,
        "deterministic": settings.deterministic,
        "seed": seed,
    }


def fit_federated(
    params: Mapping[str, Any],
    data: TrainingData,
    *,
    report: EpochReporter = never_prune,
    seed: int = 0,
    train_part: str | Sequence[str] = "train",
    valid_part: str | None = "valid",
    resources: SimulationResources | None = None,
    work_dir: Path | None = None,
) -> FederatedOutcome:
    """Train one configuration with FedAvg, each speaker of ``train_part`` a client.

    Args:
        params: federated keys (:class:`FederatedSettings`) and the family's parameters.
        data: the split and the feature cache (``data.backbone``: ``logmel`` or ``egemaps``).
        report: hears (round, validation BCA) after every round; True stops the run.
        seed: seeds the initial model, the clients sampled per round and their data order.
        train_part: the part(s) whose speakers are the clients.
        valid_part: the part the server scores after each round (``None``: no scoring).
        resources: CPUs for the simulation.
        work_dir: where the client shards are written (default: a temporary folder).

    Returns:
        The outcome; diverged or failing clients give a ``failed`` result, not an exception.

    Raises:
        UserError: for bad parameters, a family that cannot train federated, or fewer than
            two speakers.
    """
    from flwr.simulation import run_simulation  # starts Ray: import only when running

    settings, model_params = FederatedSettings.split_params(params)
    if data.backbone not in FEDERATED_FAMILIES:
        raise UserError(
            f"federated training supports the families {', '.join(FEDERATED_FAMILIES)}; "
            f"found {data.backbone!r}. Set federated.backbone in config.yaml."
        )
    started = time.perf_counter()
    seed_everything(seed)
    labels = list(data.split.labels)
    model = build_model(data.backbone, num_classes=len(labels), params=model_params)
    stage = model.stages[0]
    model.set_stage(stage)
    preprocessing = Preprocessing(maxlen=settings.maxlen, padding=settings.padding)
    feature = model.frozen_feature(stage)
    parts = [train_part] if isinstance(train_part, str) else list(train_part)
    utterances = [u for part in parts for u in data.split.parts[part]]
    targets = np.concatenate([data.split.targets(part) for part in parts])
    shards = speaker_shards(
        utterances, data.cache.get_many(feature, utterances, preprocessing), targets
    )
    valid = None
    if valid_part:
        valid_items = data.cache.get_many(feature, data.split.parts[valid_part], preprocessing)
        valid = (valid_items, data.split.targets(valid_part))

    run = _Run()
    with tempfile.TemporaryDirectory(prefix="serhpo-fl-", dir=work_dir) as folder:
        shard_file = save_shards(shards, Path(folder) / "clients.pt")
        client_config = _client_config(
            shards=shard_file,
            family=data.backbone,
            model_params=model.params,
            num_classes=len(labels),
            settings=settings,
            seed=seed,
        )
        server = _server_app(
            model=model,
            stage=stage,
            settings=settings,
            client_config=client_config,
            n_clients=len(shards),
            valid=valid,
            labels=labels,
            seed=seed,
            report=report,
            run=run,
        )
        log.info(
            "federated run: %d clients (%s), %d rounds, %d clients per round",
            len(shards),
            ", ".join(shard.speaker for shard in shards),
            settings.rounds,
            settings.clients_per_round(len(shards)),
        )
        flower_log = logging.getLogger("flwr")
        previous_level = flower_log.level
        # One line per round of our own instead; Flower's run_simulation also warns that
        # it is deprecated for `flwr run`, which needs an installed Flower app, not a stage.
        flower_log.setLevel(logging.ERROR)
        pythonpath = os.environ.get("PYTHONPATH")  # Flower rewrites it for its Ray workers
        try:
            with _ray_kept():
                run_simulation(
                    server_app=server,
                    client_app=client_app,
                    num_supernodes=len(shards),
                    backend_config=(resources or SimulationResources()).backend_config(),
                )
        except BaseException:
            shutdown_simulation()  # a run that broke off: the next one starts afresh
            raise
        finally:
            flower_log.setLevel(previous_level)
            if pythonpath is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = pythonpath
    if run.error is not None:
        shutdown_simulation()  # the server broke off: the next run starts afresh
        if isinstance(run.error, UserError):
            raise run.error
        raise RuntimeError(f"the federated simulation failed: {run.error}") from run.error
    strategy = run.strategy
    if run.arrays is not None:
        model.load_state_dict(run.arrays.to_torch_state_dict())
    model.eval()
    extra: dict[str, float | int | str] = {
        "cpu_seconds": round(strategy.cpu_seconds, 3) if strategy else math.nan,
        "seconds": round(time.perf_counter() - started, 3),
        "clients": len(shards),
        "clients_per_round": settings.clients_per_round(len(shards)),
        "rounds_run": len(strategy.sampled) if strategy else 0,
    }
    history = list(run.history)
    if strategy is not None and strategy.problem:
        status, reason, value = TrialStatus.FAILED, strategy.problem, math.nan
        log.warning("federated run failed: %s", reason)
    elif strategy is not None and strategy.stop_reason:
        status, reason, value = TrialStatus.PRUNED, strategy.stop_reason, history[-1]
    else:
        status, reason = TrialStatus.COMPLETE, ""
        value = history[-1] if history else math.nan
    result = TrialResult(value=value, status=status, reason=reason, history=history, extra=extra)
    return FederatedOutcome(result=result, model=model, settings=settings, scores=run.scores)
