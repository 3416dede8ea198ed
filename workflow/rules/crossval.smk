# Speaker cross-validation (split.strategy: speaker with split.folds: k or loso): per engine and
# outer fold, a study on the fold's training speakers that selects on inner speaker folds, a
# retraining of its best configuration on those speakers and one scoring of its held-out
# speakers; then the outer folds pooled per engine. The single split's studies, final models
# and evaluations (hpo.smk, final.smk) stay as they are: the paper's protocol and the
# deliverable models.


rule hpo_cv:
    input:
        split=f"results/splits/{TUNE_CORPUS}.csv",
        features=f"{config['features']['cache_dir']}/{TUNE_CORPUS}/{BACKBONE}.summary.json",
        backbone=backbone_dir(),
    output:
        trials="results/hpo/{engine}/fold-{fold}/trials.csv",
        best="results/hpo/{engine}/fold-{fold}/best.yaml",
    log:
        "logs/hpo_cv/{engine}/fold-{fold}.log",
    conda:
        "../../envs/hpo.yaml"
    threads: 1
    resources:
        **training_resources(mem_mb=8000, runtime=1440),
    params:
        settings=cv_hpo_settings,
        study="results/hpo/{engine}/fold-{fold}/study",
        cache_dir=lambda wc, input: cache_root(input.features),
        backbone_option=backbone_option,
    shell:
        "(serhpo hpo --engine {wildcards.engine} --config-json {params.settings:q} "
        "--out {params.study} --restart-on-change --objective trainer --split {input.split} "
        "--outer-fold {wildcards.fold} --n-workers 1 --cache-dir {params.cache_dir} "
        "{params.backbone_option} "
        "&& cp {params.study}/trials.csv {output.trials} "
        "&& cp {params.study}/best.yaml {output.best}) > {log} 2>&1"


rule cv_fold:
    input:
        best=rules.hpo_cv.output.best,
        split=f"results/splits/{TUNE_CORPUS}.csv",
        features=f"{config['features']['cache_dir']}/{TUNE_CORPUS}/{BACKBONE}.summary.json",
        backbone=backbone_dir(),
    output:
        predictions="results/cv/{engine}/fold-{fold}/predictions.csv",
        summary="results/cv/{engine}/fold-{fold}/fold.json",
    log:
        "logs/cv_fold/{engine}/fold-{fold}.log",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        **training_resources(mem_mb=8000, runtime=240),
    params:
        settings=stage_settings(
            "seed", "target_labels", "backbone", "model", "training", "features"
        ),
        cache_dir=lambda wc, input: cache_root(input.features),
        backbone_option=backbone_option,
    shell:
        "serhpo cv-fold --best {input.best} --split {input.split} --fold {wildcards.fold} "
        "--engine {wildcards.engine} --predictions {output.predictions} "
        "--summary {output.summary} --config-json {params.settings:q} "
        "--cache-dir {params.cache_dir} {params.backbone_option} > {log} 2>&1"


rule cv_pool:
    input:
        predictions=cv_fold_files("predictions.csv"),
        summaries=cv_fold_files("fold.json"),
    output:
        pooled="results/cv/{engine}/pooled.json",
        per_speaker="results/cv/{engine}/per_speaker.csv",
        configs="results/cv/{engine}/configs.csv",
        predictions="results/cv/{engine}/predictions.csv",
    log:
        "logs/cv_pool/{engine}.log",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        folds=CV_FOLDS,
        settings=as_json(
            {
                "seed": config["seed"],
                "target_labels": config["target_labels"],
                "evaluation": {"bootstrap": config["evaluation"]["bootstrap"]},
            }
        ),
        out=lambda wc, output: str(Path(output.pooled).parent),
    shell:
        "serhpo cv-pool --predictions {input.predictions} --summaries {input.summaries} "
        "--engine {wildcards.engine} --folds {params.folds} --out {params.out} "
        "--config-json {params.settings:q} > {log} 2>&1"
