# One hyper-parameter study per engine on the tuning corpus' train/valid parts.
# The study lives in results/hpo/{engine}/study/, which Snakemake does not delete: a killed or
# extended study resumes there. trials.csv and best.yaml are copied out when it ends.


rule hpo:
    input:
        split=f"results/splits/{TUNE_CORPUS}.csv",
        features=f"{config['features']['cache_dir']}/{TUNE_CORPUS}/{BACKBONE}.summary.json",
        backbone=backbone_dir(),
    output:
        trials="results/hpo/{engine}/trials.csv",
        best="results/hpo/{engine}/best.yaml",
    log:
        "logs/hpo/{engine}.log",
    conda:
        "../../envs/hpo.yaml"
    threads: lambda wc: config["hpo"]["n_workers"] if wc.engine == "optuna" else 1
    resources:
        mem_mb=8000,
        runtime=1440,
    params:
        settings=hpo_settings,
        study="results/hpo/{engine}/study",
        cache_dir=lambda wc, input: cache_root(input.features),
        backbone_option=backbone_option,
    shell:
        "(serhpo hpo --engine {wildcards.engine} --config-json {params.settings:q} "
        "--out {params.study} --restart-on-change --objective trainer --split {input.split} "
        "--cache-dir {params.cache_dir} {params.backbone_option} "
        "&& cp {params.study}/trials.csv {output.trials} "
        "&& cp {params.study}/best.yaml {output.best}) > {log} 2>&1"
