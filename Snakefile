# serhpo: speech emotion recognition with pretrained models and hyper-parameter optimisation.
# The stages live in workflow/rules/; the logic in the serhpo package (workflow/serhpo/).
from serhpo.errors import UserError


configfile: "config.yaml"


# A preset (config key `preset`, which the demo profile sets): its override file is read here,
# after config.yaml and before every --configfile and --config, which Snakemake applies again
# after each config file the Snakefile reads. So `--profile profiles/demo --configfile mine.yaml`
# is the demo plus mine.yaml, even though that --configfile replaces the profile's list of files.
PRESETS = {
    "demo": "profiles/demo/demo-config.yaml",
    "whisper": "profiles/whisper/whisper-config.yaml",
}
if config.get("preset") is not None:
    if config["preset"] not in PRESETS:
        raise UserError(
            f"config key preset is {config['preset']!r}; expected one of {sorted(PRESETS)} "
            "(or null for config.yaml alone, the paper's set-up). Fix --config preset=... or "
            "the config file that sets it."
        )

    configfile: PRESETS[config["preset"]]


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
