# Backbones and the feature cache: whatever is frozen is computed once for every trial and engine.


rule build_tiny_backbone:
    output:
        backbone=directory("resources/models/tiny_wav2vec2"),
    log:
        "logs/build_tiny_backbone.log",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        tiny=config["backbone"]["tiny"],
        seed=config["seed"],
    shell:
        "serhpo build-tiny-backbone {output.backbone} --seed {params.seed} "
        "--hidden-size {params.tiny[hidden_size]} --num-layers {params.tiny[num_layers]} "
        "--num-heads {params.tiny[num_heads]} --conv-channels {params.tiny[conv_channels]} "
        "> {log} 2>&1"


rule fetch_backbone:
    output:
        backbone=directory("resources/models/wav2vec2"),
    log:
        "logs/fetch_backbone.log",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        backbone=config["backbone"],
    shell:
        "serhpo fetch-backbone {output.backbone} "
        "--speechbrain-repo {params.backbone[speechbrain_repo]} "
        "--speechbrain-revision {params.backbone[speechbrain_revision]} "
        "--wav2vec2-repo {params.backbone[wav2vec2_repo]} "
        "--wav2vec2-revision {params.backbone[wav2vec2_revision]} > {log} 2>&1"


rule cache_features:
    input:
        split=rules.split_corpus.output.split,
        backbone=backbone_dir(),
    output:
        summary=f"{config['features']['cache_dir']}/{{corpus}}/{BACKBONE}.summary.json",
    log:
        "logs/cache_features/{corpus}.log",
    conda:
        "../../envs/models.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        settings=cache_settings(),
        cache_dir=lambda wc, output: cache_root(output.summary),
        backbone_option=backbone_option,
        parts=cached_parts,
    shell:
        "serhpo cache-features {input.split} --config-json {params.settings:q} "
        "--cache-dir {params.cache_dir} {params.backbone_option} "
        "--parts {params.parts} --summary {output.summary} > {log} 2>&1"
