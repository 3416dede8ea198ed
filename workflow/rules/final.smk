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


rule evaluate:
    input:
        model=evaluated_model,
        backbone=lambda wc: backbone_dir() if wc.model == "pretrained" else [],
        split=rules.split_corpus.output.split,
    output:
        scores="results/eval/{model}/{corpus}.json",
    log:
        "logs/evaluate/{model}/{corpus}.log",
    conda:
        "../../envs/models.yaml"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=120,
    params:
        which=lambda wc, input: (
            f"--pretrained {input.backbone}"
            if wc.model == "pretrained"
            else f"--model-dir {input.model}"
        ),
        role=lambda wc: corpus_config(wc.corpus)["role"],
        protocol=config["split"]["strategy"],
        seed=config["seed"],
        bootstrap=config["evaluation"]["bootstrap"],
        zero_shot_labels=config["evaluation"]["zero_shot_labels"],
        # Frozen features through the trials' cache (atomic writes: parallel jobs share it).
        cache_dir=config["features"]["cache_dir"],
        settings=stage_settings("target_labels", "audio"),
    shell:
        "serhpo evaluate {params.which} --model-name {wildcards.model} --split {input.split} "
        "--corpus {wildcards.corpus} --role {params.role} --protocol {params.protocol} "
        "--seed {params.seed} --bootstrap {params.bootstrap} --threads {threads} "
        "--zero-shot-labels {params.zero_shot_labels} --cache-dir {params.cache_dir:q} "
        "--config-json {params.settings:q} --out {output.scores} > {log} 2>&1"
