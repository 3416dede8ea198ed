# serhpo: speech emotion recognition with pretrained models and hyper-parameter optimisation.
# The stages live in workflow/rules/; the logic in the serhpo package (workflow/serhpo/).


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/hpo.smk"
include: "workflow/rules/final.smk"
include: "workflow/rules/crossval.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/federated.smk"


rule all:
    default_target: True
    input:
        manifests=expand(rules.prepare_corpus.output.manifest, corpus=CORPORA),
        splits=expand(rules.split_corpus.output.split, corpus=CORPORA),
        report=rules.report.output,
        federated=rules.fl_report.output if FL["enabled"] else [],
