# The recursive VAE on images (the paper's MNIST VAE): a classifier trained once on real
# data scores every generation; one resumable job per (regime, chain); summary, figures, table.

import shlex


VAE = config["vae"]
VAE_REGIMES = {Regime.from_config(r).label: Regime.from_config(r) for r in VAE["regimes"]}
VAE_DIR = f"{RES}/vae/{VAE['dataset']}"
VAE_CHAINS = expand(f"{VAE_DIR}/{{regime}}/chain{{chain}}.npz", regime=list(VAE_REGIMES),
                    chain=range(VAE["chains"]))
# Chain 0 of every regime: the sample grids (one chain is what a reader looks at).
VAE_FIRST_CHAINS = expand(f"{VAE_DIR}/{{regime}}/chain0.npz", regime=list(VAE_REGIMES))

RESULTS.append(f"{VAE_DIR}/summary.csv")
FIGURES.extend([FIG + "/vae_samples.pdf", FIG + "/vae_latent_density.pdf", FIG + "/vae_metrics.pdf"])
PAPER_INPUTS.extend([GEN + "/vae_table.tex", GEN + "/vae_numbers.tex"])


def vae_data_args():
    data_dir = config.get("data_dir")
    args = f"--dataset {VAE['dataset']} --seed {config['seed']} --validation-fraction {VAE['validation_fraction']}"
    return args + (f" --data-dir {shlex.quote(data_dir)}" if data_dir else "")


rule vae_classifier:
    output:
        npz=f"{VAE_DIR}/classifier.npz",
        provenance=f"{VAE_DIR}/classifier.npz.provenance.json",
    log:
        f"{LOGS}/vae/{VAE['dataset']}_classifier.log",
    benchmark:
        f"{BENCH}/vae_{VAE['dataset']}_classifier.tsv"
    params:
        data=vae_data_args(),
        block=VAE["classifier"],
        platform=config["platform"],
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=GPUS,
    shell:
        "{PY} vae classifier {params.data} --epochs {params.block[epochs]}"
        " --batch-size {params.block[batch_size]} --learning-rate {params.block[learning_rate]}"
        " --platform {params.platform} --out {output.npz} > {log} 2>&1"


# A killed chain resumes from its last finished generation: its checkpoints live in
# <chain>.checkpoints/, which is not an output, so Snakemake keeps it when a job fails.
rule vae_chain:
    input:
        classifier=f"{VAE_DIR}/classifier.npz",
    output:
        npz=f"{VAE_DIR}/{{regime}}/chain{{chain}}.npz",
        provenance=f"{VAE_DIR}/{{regime}}/chain{{chain}}.npz.provenance.json",
    log:
        f"{LOGS}/vae/{VAE['dataset']}_{{regime}}_chain{{chain}}.log",
    benchmark:
        f"{BENCH}/vae_{VAE['dataset']}_{{regime}}_chain{{chain}}.tsv"
    wildcard_constraints:
        regime="|".join(re.escape(label) for label in VAE_REGIMES),
        chain=r"\d+",
    params:
        config=config_json("vae", data_dir=True),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=chain_runtime(20, VAE["generations"]),
        gpu=GPUS,
    shell:
        "{PY} vae chain --config-json {params.config:q} --label {wildcards.regime:q} --chain {wildcards.chain}"
        " --classifier {input.classifier} --out {output.npz} > {log} 2>&1"


rule vae_summarize:
    input:
        VAE_CHAINS,
    output:
        csv=f"{VAE_DIR}/summary.csv",
        provenance=f"{VAE_DIR}/summary.csv.provenance.json",
    log:
        f"{LOGS}/vae/{VAE['dataset']}_summarize.log",
    benchmark:
        f"{BENCH}/vae_{VAE['dataset']}_summarize.tsv"
    threads: 1
    shell:
        "{PY} vae summarize --out {output.csv} {input} > {log} 2>&1"


rule vae_samples_figure:
    input:
        VAE_FIRST_CHAINS,
    output:
        pdf=report(FIG + "/vae_samples.pdf", caption="../report/vae_samples.rst", category="VAE"),
        png=FIG + "/vae_samples.png",
    log:
        LOGS + "/vae/samples_figure.log",
    benchmark:
        BENCH + "/vae_samples_figure.tsv"
    params:
        generations=" ".join(str(g) for g in VAE["grid_generations"]),
    threads: 1
    shell:
        "{PY} vae figure --kind samples --results {input} --generations {params.generations}"
        " --out {output.pdf} > {log} 2>&1"


rule vae_density_figure:
    input:
        VAE_CHAINS,
    output:
        pdf=report(FIG + "/vae_latent_density.pdf", caption="../report/vae_latent_density.rst", category="VAE"),
        png=FIG + "/vae_latent_density.png",
    log:
        LOGS + "/vae/density_figure.log",
    benchmark:
        BENCH + "/vae_density_figure.tsv"
    threads: 1
    shell:
        "{PY} vae figure --kind density --results {input} --out {output.pdf} > {log} 2>&1"


rule vae_metrics_figure:
    input:
        f"{VAE_DIR}/summary.csv",
    output:
        pdf=report(FIG + "/vae_metrics.pdf", caption="../report/vae_metrics.rst", category="VAE"),
        png=FIG + "/vae_metrics.png",
    log:
        LOGS + "/vae/metrics_figure.log",
    benchmark:
        BENCH + "/vae_metrics_figure.tsv"
    threads: 1
    shell:
        "{PY} vae figure --kind metrics --summary {input} --out {output.pdf} > {log} 2>&1"


rule vae_table:
    input:
        f"{VAE_DIR}/summary.csv",
    output:
        table=GEN + "/vae_table.tex",
        numbers=GEN + "/vae_numbers.tex",
    log:
        LOGS + "/vae/table.log",
    benchmark:
        BENCH + "/vae_table.tsv"
    params:
        generations=" ".join(str(g) for g in VAE["table_generations"]),
    threads: 1
    shell:
        "{PY} vae table --summary {input} --generations {params.generations}"
        " --table {output.table} --numbers {output.numbers} > {log} 2>&1"
