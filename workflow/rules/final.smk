# The best configuration of each engine, retrained on train + valid, and its evaluation:
# the home corpus' test part (read here and nowhere else) and zero-shot on the other corpora.


rule retrain_final:
    input:
        best=rules.hpo.output.best,
        split=f"results/splits/{TUNE_CORPUS}.csv",
        backbone=backbone_dir(),
    output:
        model=directory("results/final/{engine}/model"),
        summary="results/final/{engine}/training.json",
    log:
        "logs/retrain_final/{engine}.log",
    conda:
        "../../envs/models.yaml"
    threads: 2
    resources:
        **training_resources(mem_mb=8000, runtime=240),
    params:
        settings=stage_settings(
            "seed",
            "target_labels",
            "backbone",
            "model",
            "training",
            "features",
            "audio",
        ),
        backbone_option=backbone_option,
    shell:
        "serhpo retrain --best {input.best} --split {input.split} --model-dir {output.model} "
        "--summary {output.summary} --config-json {params.settings:q} "
        "{params.backbone_option} > {log} 2>&1"


# One job per model scores it on every corpus: the model (and Python, torch, SpeechBrain) load
# once, not once per corpus. The paper's pretrained row (the backbone's own head) is a rule of
# its own: it needs no retraining, so its jobs would otherwise sit levels above the tuned
# models' in the report's rule graph, which shows a rule once per level.


rule evaluate:
    input:
        model=rules.retrain_final.output.model,
        splits=expand(rules.split_corpus.output.split, corpus=CORPORA),
    output:
        scores=expand("results/eval/{{engine}}/{corpus}.json", corpus=CORPORA),
    log:
        "logs/evaluate/{engine}.log",
    conda:
        "../../envs/models.yaml"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=120,
    params:
        corpora=CORPORA,
        roles=[corpus_config(corpus)["role"] for corpus in CORPORA],
        protocol=config["split"]["strategy"],
        seed=config["seed"],
        bootstrap=config["evaluation"]["bootstrap"],
        zero_shot_labels=config["evaluation"]["zero_shot_labels"],
        # Frozen features through the trials' cache (atomic writes: parallel jobs share it).
        cache_dir=config["features"]["cache_dir"],
        settings=stage_settings("target_labels", "audio"),
    shell:
        "serhpo evaluate --model-dir {input.model} --model-name {wildcards.engine} "
        "--split {input.splits} --corpus {params.corpora} --role {params.roles} "
        "--protocol {params.protocol} --seed {params.seed} --bootstrap {params.bootstrap} "
        "--threads {threads} --zero-shot-labels {params.zero_shot_labels} "
        "--cache-dir {params.cache_dir:q} --config-json {params.settings:q} "
        "--out {output.scores} > {log} 2>&1"


rule evaluate_pretrained:
    input:
        backbone=backbone_dir(),
        splits=expand(rules.split_corpus.output.split, corpus=CORPORA),
    output:
        scores=expand("results/eval/pretrained/{corpus}.json", corpus=CORPORA),
    log:
        "logs/evaluate/pretrained.log",
    conda:
        "../../envs/models.yaml"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=120,
    params:
        corpora=CORPORA,
        roles=[corpus_config(corpus)["role"] for corpus in CORPORA],
        protocol=config["split"]["strategy"],
        seed=config["seed"],
        bootstrap=config["evaluation"]["bootstrap"],
        zero_shot_labels=config["evaluation"]["zero_shot_labels"],
        cache_dir=config["features"]["cache_dir"],
        settings=stage_settings("target_labels", "audio"),
    shell:
        "serhpo evaluate --pretrained {input.backbone} --model-name pretrained "
        "--split {input.splits} --corpus {params.corpora} --role {params.roles} "
        "--protocol {params.protocol} --seed {params.seed} --bootstrap {params.bootstrap} "
        "--threads {threads} --zero-shot-labels {params.zero_shot_labels} "
        "--cache-dir {params.cache_dir:q} --config-json {params.settings:q} "
        "--out {output.scores} > {log} 2>&1"
