# Config validation and the small helpers every stage's rules share.
import json

from snakemake.utils import min_version, validate

from serhpo.config import load_schema, validate_config, with_defaults

min_version("9.0")


# Our own check first: its message names the key, the value found and what is allowed.
# validate() fills defaults of fixed keys only; per-corpus entries get theirs from the same schema.
config.update(with_defaults(config, load_schema()))
validate_config(config, load_schema())
validate(config, "../schemas/config.schema.yaml")

CORPORA = list(config["corpora"])


wildcard_constraints:
    corpus="|".join(CORPORA),


def corpus_config(corpus):
    """One corpus' entry of config.yaml, defaults filled in."""
    return config["corpora"][corpus]


def corpus_format(corpus):
    return corpus_config(corpus)["format"] or corpus


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
