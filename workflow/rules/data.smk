# Data stage: corpora in (synthetic, downloaded or a local folder), mono 16 kHz manifests and splits out.


rule synthesize_corpus:
    output:
        raw=directory("resources/corpora/{corpus}/synthetic"),
    log:
        "logs/synthesize_corpus/{corpus}.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        format=lambda wc: corpus_format(wc.corpus),
        synthetic=lambda wc: corpus_config(wc.corpus)["synthetic"],
        bad_files=lambda wc: (
            "--bad-files" if corpus_config(wc.corpus)["synthetic"]["bad_files"] else ""
        ),
        seed=config["seed"],
    shell:
        "serhpo synthesize --format {params.format} --out {output.raw} "
        "--speakers {params.synthetic[speakers]} "
        "--per-speaker-label {params.synthetic[per_speaker_label]} --seed {params.seed} "
        "{params.bad_files} > {log} 2>&1"


rule download_corpus:
    output:
        raw=directory("resources/corpora/{corpus}/raw"),
    log:
        "logs/download_corpus/{corpus}.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=240,
    params:
        url=lambda wc: corpus_config(wc.corpus)["url"],
        sha256=lambda wc: corpus_config(wc.corpus)["sha256"] or "none",
        mode=lambda wc: corpus_config(wc.corpus)["download_mode"],
    shell:
        "serhpo download --corpus {wildcards.corpus} --url {params.url:q} "
        "--sha256 {params.sha256} --mode {params.mode} --dest {output.raw} > {log} 2>&1"


rule prepare_corpus:
    input:
        raw=raw_corpus_dir,
        tables=source_tables,
    output:
        audio=directory("resources/corpora/{corpus}/16k"),
        manifest="results/manifests/{corpus}.csv",
        rejects="results/manifests/{corpus}.rejects.csv",
        summary="results/manifests/{corpus}.summary.json",
    log:
        "logs/prepare_corpus/{corpus}.log",
    conda:
        "../../envs/data.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        format=lambda wc: corpus_format(wc.corpus),
        # Only the keys preparation reads, so that editing another key does not rerun it.
        reader=lambda wc: reader_options(wc.corpus),
        label_map=lambda wc: as_json(corpus_config(wc.corpus)["label_map"]),
        target_labels=as_json(config["target_labels"]),
        expect_count=lambda wc: prepare_expect_count(wc.corpus),
        audio=config["audio"],
        loudness=(
            config["audio"]["loudness"]["target_lufs"]
            if config["audio"]["loudness"]["enabled"]
            else "none"
        ),
    shell:
        "serhpo prepare --corpus {wildcards.corpus} --format {params.format} "
        "--raw {input.raw} --reader-options {params.reader:q} --out {output.audio} "
        "--manifest {output.manifest} "
        "--rejects {output.rejects} --summary {output.summary} "
        "--label-map {params.label_map:q} --target-labels {params.target_labels:q} "
        "--expect-count {params.expect_count} --sample-rate {params.audio[sample_rate]} "
        "--min-duration {params.audio[min_duration_s]} "
        "--min-sample-rate {params.audio[min_sample_rate]} "
        "--silence-dbfs {params.audio[silence_dbfs]} --loudness-lufs {params.loudness} "
        "--peak-dbfs {params.audio[loudness][peak_dbfs]} --threads {threads} > {log} 2>&1"


# A checkpoint: with split.folds: loso the outer folds are the tuning corpus' speakers, known
# once its split exists (workflow/rules/crossval.smk).
checkpoint split_corpus:
    input:
        manifest=rules.prepare_corpus.output.manifest,
    output:
        split="results/splits/{corpus}.csv",
    log:
        "logs/split_corpus/{corpus}.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        split=lambda wc: split_settings(wc.corpus),
        seed=config["seed"],
        # A zero-shot corpus is not split (every labelled row is test).
        role=lambda wc: corpus_config(wc.corpus)["role"],
    shell:
        "serhpo split {input.manifest} {output.split} --strategy {params.split[strategy]} "
        "--test-fraction {params.split[test_fraction]} "
        "--valid-fraction {params.split[valid_fraction]} --folds {params.split[folds]} "
        "--seed {params.seed} --role {params.role} > {log} 2>&1"
