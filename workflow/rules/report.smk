# The paper's tables and plots, from every study's trials and every evaluation.

TABLES = [
    "table3_time_to_threshold",
    "table4_best_config",
    "table5_efficiency",
    "table6_zero_shot",
]


rule report:
    input:
        trials=expand(rules.hpo.output.trials, engine=ENGINES),
        best=expand(rules.hpo.output.best, engine=ENGINES),
        evals=expand("results/eval/{model}/{corpus}.json", model=MODELS, corpus=CORPORA),
        cv=expand(rules.cv_pool.output.pooled, engine=ENGINES) if CV else [],
        per_speaker=(
            expand(rules.cv_pool.output.per_speaker, engine=ENGINES) if CV else []
        ),
    output:
        headline=report(
            "results/tables/headline.html",
            caption="../report/headline.rst",
            category="Tables",
            labels={"table": "headline", "name": "BCA per engine"},
        ),
        headline_csv="results/tables/headline.csv",
        headline_md="results/tables/headline.md",
        # With speaker cross-validation only: held-out BCA per speaker and engine.
        cv_per_speaker=(
            report(
                "results/plots/cv_per_speaker.png",
                caption="../report/cv_per_speaker.rst",
                category="Evaluation",
            )
            if CV
            else []
        ),
        table3=report(
            "results/tables/table3_time_to_threshold.html",
            caption="../report/table3_time_to_threshold.rst",
            category="Tables",
            labels={"table": "3", "name": "time to threshold"},
        ),
        table3_csv="results/tables/table3_time_to_threshold.csv",
        table4=report(
            "results/tables/table4_best_config.html",
            caption="../report/table4_best_config.rst",
            category="Tables",
            labels={"table": "4", "name": "best config"},
        ),
        table4_csv="results/tables/table4_best_config.csv",
        table5=report(
            "results/tables/table5_efficiency.html",
            caption="../report/table5_efficiency.rst",
            category="Tables",
            labels={"table": "5", "name": "efficiency"},
        ),
        table5_csv="results/tables/table5_efficiency.csv",
        table6=report(
            "results/tables/table6_zero_shot.html",
            caption="../report/table6_zero_shot.rst",
            category="Tables",
            labels={"table": "6", "name": "zero shot"},
        ),
        table6_csv="results/tables/table6_zero_shot.csv",
        markdown=expand("results/tables/{table}.md", table=TABLES),
        best_so_far=report(
            "results/plots/best_so_far.png",
            caption="../report/best_so_far.rst",
            category="Hyper-parameter search",
        ),
        param_effects=report(
            "results/plots/param_effects.png",
            caption="../report/param_effects.rst",
            category="Hyper-parameter search",
        ),
        confusion=report(
            expand(
                "results/plots/confusion_{model}_{corpus}.png",
                model=MODELS,
                corpus=CORPORA,
            ),
            caption="../report/confusion.rst",
            category="Evaluation",
            subcategory="Confusion matrices",
        ),
    log:
        "logs/report.log",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # One line in the report's "Job parameters"; the shell gets the JSON (:jsonq).
        settings=summarised_in_report(
            stage_settings(
                "report", "split", "hpo", "corpora", "search_space", "target_labels"
            )
        ),
    shell:
        "serhpo report --trials {input.trials} --evals {input.evals} --cv {input.cv} "
        "--config-json {params.settings:jsonq} --out results > {log} 2>&1"
