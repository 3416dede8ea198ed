# One hyper-parameter study per engine on the tuning corpus' train/valid parts.
# The study lives in results/hpo/{engine}/study/, which Snakemake does not delete: a killed or
# extended study resumes there. With hpo.n_workers > 1, Optuna, random and grid studies are
# shared by that many hpo_worker jobs (separate SLURM jobs on a cluster); the hpo job then finds
# the budget spent (or runs what a stopped worker left) and copies trials.csv and best.yaml out,
# as a single job does.


rule hpo_worker:
    input:
        split=f"results/splits/{TUNE_CORPUS}.csv",
        features=f"{config['features']['cache_dir']}/{TUNE_CORPUS}/{BACKBONE}.summary.json",
        backbone=backbone_dir(),
    output:
        summary="results/hpo/{engine}/workers/{worker}.yaml",
    log:
        "logs/hpo_worker/{engine}/{worker}.log",
    wildcard_constraints:
        worker=r"\d+",
    conda:
        "../../envs/hpo.yaml"
    threads: 1
    resources:
        **training_resources(mem_mb=8000, runtime=1440),
    params:
        settings=hpo_settings,
        study="results/hpo/{engine}/study",
        cache_dir=lambda wc, input: cache_root(input.features),
        backbone_option=backbone_option,
    shell:
        "serhpo hpo --engine {wildcards.engine} --config-json {params.settings:q} "
        "--out {params.study} --restart-on-change --objective trainer --split {input.split} "
        "--cache-dir {params.cache_dir} {params.backbone_option} --worker {wildcards.worker} "
        "--worker-summary {output.summary} > {log} 2>&1"


rule hpo:
    input:
        split=f"results/splits/{TUNE_CORPUS}.csv",
        features=f"{config['features']['cache_dir']}/{TUNE_CORPUS}/{BACKBONE}.summary.json",
        backbone=backbone_dir(),
        workers=worker_summaries,
    output:
        trials="results/hpo/{engine}/trials.csv",
        best="results/hpo/{engine}/best.yaml",
    log:
        "logs/hpo/{engine}.log",
    conda:
        "../../envs/hpo.yaml"
    threads: 1
    resources:
        **training_resources(mem_mb=8000, runtime=1440),
    params:
        settings=hpo_settings,
        study="results/hpo/{engine}/study",
        cache_dir=lambda wc, input: cache_root(input.features),
        backbone_option=backbone_option,
    shell:
        # Left as it was before worker jobs existed: a changed command would rerun every study
        # and what follows. After the workers, the budget is spent and it starts nothing.
        "(serhpo hpo --engine {wildcards.engine} --config-json {params.settings:q} "
        "--out {params.study} --restart-on-change --objective trainer --split {input.split} "
        "--cache-dir {params.cache_dir} {params.backbone_option} "
        "&& cp {params.study}/trials.csv {output.trials} "
        "&& cp {params.study}/best.yaml {output.best}) > {log} 2>&1"
