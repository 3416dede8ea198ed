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
        evals=expand(rules.evaluate.output.scores, model=MODELS, corpus=CORPORA),
        cv=expand(rules.cv_pool.output.pooled, engine=ENGINES) if CV else [],
        per_speaker=(
            expand(rules.cv_pool.output.per_speaker, engine=ENGINES) if CV else []
        ),
    output:
        headline=report(
            "results/tables/headline.csv",
            caption="../report/headline.rst",
            category="Tables",
        ),
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
            "results/tables/table3_time_to_threshold.csv",
            caption="../report/table3_time_to_threshold.rst",
            category="Tables",
        ),
        table4=report(
            "results/tables/table4_best_config.csv",
            caption="../report/table4_best_config.rst",
            category="Tables",
        ),
        table5=report(
            "results/tables/table5_efficiency.csv",
            caption="../report/table5_efficiency.rst",
            category="Tables",
        ),
        table6=report(
            "results/tables/table6_zero_shot.csv",
            caption="../report/table6_zero_shot.rst",
            category="Tables",
        ),
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
        settings=stage_settings(
            "report", "split", "hpo", "corpora", "search_space", "target_labels"
        ),
    shell:
        "serhpo report --trials {input.trials} --evals {input.evals} --cv {input.cv} "
        "--config-json {params.settings:q} --out results > {log} 2>&1"
