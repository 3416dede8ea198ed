# Federated training: FedAvg on Flower's simulation with each training speaker of the tuning
# corpus as a client, tuned per engine as a study of validation BCA against the clients' CPU
# seconds, then the best and the cheapest near-best configurations retrained and scored.


rule fl_hpo:
    input:
        split=f"results/splits/{TUNE_CORPUS}.csv",
    output:
        trials="results/federated/hpo/{fl_engine}/trials.csv",
        best="results/federated/hpo/{fl_engine}/best.yaml",
        pareto="results/federated/hpo/{fl_engine}/pareto.csv",
    log:
        "logs/fl_hpo/{fl_engine}.log",
    conda:
        "../../envs/federated.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=1440,
    params:
        settings=federated_hpo_settings,
        study="results/federated/hpo/{fl_engine}/study",
        cache_dir=config["features"]["cache_dir"],
    shell:
        "(serhpo hpo --engine {wildcards.fl_engine} --objective federated "
        "--config-json {params.settings:q} --out {params.study} --restart-on-change "
        "--split {input.split} --cache-dir {params.cache_dir} --threads {threads} "
        "&& cp {params.study}/trials.csv {output.trials} "
        "&& cp {params.study}/best.yaml {output.best} "
        "&& cp {params.study}/pareto.csv {output.pareto}) > {log} 2>&1"


rule fl_evaluate:
    input:
        trials=rules.fl_hpo.output.trials,
        split=f"results/splits/{TUNE_CORPUS}.csv",
        zero_shot=expand("results/splits/{corpus}.csv", corpus=ZERO_SHOT_CORPORA),
    output:
        scores="results/federated/eval/{fl_engine}.json",
    log:
        "logs/fl_evaluate/{fl_engine}.log",
    conda:
        "../../envs/federated.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        settings=federated_stage_settings(),
        cache_dir=config["features"]["cache_dir"],
        protocol=config["split"]["strategy"],
        bootstrap=config["evaluation"]["bootstrap"],
    shell:
        "serhpo fl-evaluate --engine {wildcards.fl_engine} --trials {input.trials} "
        "--split {input.split} --zero-shot {input.zero_shot} --config-json {params.settings:q} "
        "--cache-dir {params.cache_dir} --threads {threads} --protocol {params.protocol} "
        "--bootstrap {params.bootstrap} --out {output.scores} > {log} 2>&1"


rule fl_report:
    input:
        trials=expand(rules.fl_hpo.output.trials, fl_engine=FL_ENGINES),
        evaluations=expand(rules.fl_evaluate.output.scores, fl_engine=FL_ENGINES),
    output:
        summary=report(
            "results/federated/summary.html",
            caption="../report/federated_summary.rst",
            category="Federated training",
        ),
        summary_csv="results/federated/summary.csv",
        summary_md="results/federated/summary.md",
        pareto="results/federated/pareto.csv",
        pareto_md="results/federated/pareto.md",
        pareto_html="results/federated/pareto.html",
        plot=report(
            "results/federated/pareto.png",
            caption="../report/federated_pareto.rst",
            category="Federated training",
        ),
    log:
        "logs/fl_report.log",
    conda:
        "../../envs/federated.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # One line in the report's "Job parameters"; the shell gets the JSON (:jsonq).
        settings=summarised_in_report(federated_stage_settings()),
        trials=lambda wc, input: " ".join(
            f"{engine}={path}" for engine, path in zip(FL_ENGINES, input.trials)
        ),
        evaluations=lambda wc, input: " ".join(
            f"{engine}={path}" for engine, path in zip(FL_ENGINES, input.evaluations)
        ),
        corpus=TUNE_CORPUS,
        protocol=config["split"]["strategy"],
    shell:
        "serhpo fl-report --trials {params.trials} --evaluations {params.evaluations} "
        "--config-json {params.settings:jsonq} --corpus {params.corpus} "
        "--protocol {params.protocol} --out-dir results/federated > {log} 2>&1"
