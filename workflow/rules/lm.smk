# The recursive language model (Nature Fig. 1b,c): the corpus is tokenized once; one resumable job
# per (regime, chain); with init: base a base model is pretrained first; summary, figures, tables.
# With lm.model.arch: opt the base is the pretrained checkpoint lm.model.pretrained (a folder under
# data_dir, read by the corpus and chain jobs themselves, so the DAG does not need it): no pretrain job.

LM = config["lm"]
LM_DIR = f"{RES}/lm/{LM['corpus']['name']}"
LM_CHAIN = f"{LM_DIR}/{{label}}/chain{{chain}}.npz"
LM_CHAINS = expand(LM_CHAIN, label=[entry["label"] for entry in LM["regimes"]], chain=range(LM["chains"]))
# Verification (lm.verify, synthetic language only): its regimes' chains and the compared ones.
LM_VERIFY = LM.get("verify")
LM_VERIFY_CHAINS = [] if LM_VERIFY is None else (
    expand(LM_CHAIN, label=[entry["label"] for entry in LM_VERIFY["regimes"]], chain=range(LM_VERIFY["chains"]))
    + expand(LM_CHAIN, label=LM_VERIFY["compare"], chain=range(LM["chains"])))
LM_LABELS = [entry["label"] for entry in LM["regimes"] + (LM_VERIFY or {}).get("regimes", [])]

RESULTS.append(f"{LM_DIR}/summary.csv")
FIGURES.extend([FIG + "/lm_perplexity.pdf", FIG + "/lm_metrics.pdf"])
PAPER_INPUTS.extend([GEN + "/lm_table.tex", GEN + "/lm_examples.tex",
                     GEN + "/lm_numbers.tex"])
if LM_VERIFY is not None:
    RESULTS.append(f"{LM_DIR}/verify_summary.csv")
    FIGURES.append(FIG + "/lm_verify.pdf")
    PAPER_INPUTS.append(GEN + "/lm_verify_numbers.tex")


def lm_chain_inputs(wildcards):
    inputs = {"corpus": f"{LM_DIR}/corpus.npz"}
    if LM["init"] != "scratch" and LM["model"].get("arch", "gpt") == "gpt":
        inputs["base"] = f"{LM_DIR}/base.npz"
    return inputs


rule lm_corpus:
    output:
        npz=f"{LM_DIR}/corpus.npz",
        provenance=f"{LM_DIR}/corpus.npz.provenance.json",
    log:
        LOGS + "/lm/corpus.log",
    benchmark:
        BENCH + "/lm_corpus.tsv"
    params:
        config=config_json("lm", data_dir=True),
    threads: 1
    shell:
        "{PY} lm corpus --config-json {params.config:q} --out {output.npz} > {log} 2>&1"


rule lm_pretrain:
    input:
        f"{LM_DIR}/corpus.npz",
    output:
        npz=f"{LM_DIR}/base.npz",
        provenance=f"{LM_DIR}/base.npz.provenance.json",
    log:
        LOGS + "/lm/pretrain.log",
    benchmark:
        BENCH + "/lm_pretrain.tsv"
    params:
        config=config_json("lm", data_dir=True),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=chain_runtime(60, LM["pretrain_epochs"]),
        gpu=GPUS,
    shell:
        "{PY} lm pretrain --config-json {params.config:q} --corpus {input} --out {output.npz} > {log} 2>&1"


# A killed chain resumes from its last finished generation: checkpoints live in
# <chain>.checkpoints/, which is not an output, so Snakemake keeps it when a job fails.
rule lm_chain:
    input:
        unpack(lm_chain_inputs),
    output:
        npz=f"{LM_DIR}/{{label}}/chain{{chain}}.npz",
        provenance=f"{LM_DIR}/{{label}}/chain{{chain}}.npz.provenance.json",
    log:
        LOGS + "/lm/{label}_chain{chain}.log",
    benchmark:
        BENCH + "/lm_{label}_chain{chain}.tsv"
    wildcard_constraints:
        label="|".join(re.escape(label) for label in LM_LABELS),
        chain=r"\d+",
    params:
        config=config_json("lm", data_dir=True),
        base=lambda wildcards, input: f"--base {input.base}" if "base" in input.keys() else "",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=chain_runtime(180, LM["generations"]),
        gpu=GPUS,
    shell:
        "{PY} lm chain --config-json {params.config:q} --corpus {input.corpus} {params.base}"
        " --regime {wildcards.label} --chain {wildcards.chain} --out {output.npz} > {log} 2>&1"


rule lm_summarize:
    input:
        LM_CHAINS,
    output:
        csv=f"{LM_DIR}/summary.csv",
        provenance=f"{LM_DIR}/summary.csv.provenance.json",
    log:
        LOGS + "/lm/summarize.log",
    benchmark:
        BENCH + "/lm_summarize.tsv"
    threads: 1
    shell:
        "{PY} lm summarize --out {output.csv} {input} > {log} 2>&1"


rule lm_perplexity_figure:
    input:
        LM_CHAINS,
    output:
        pdf=report(FIG + "/lm_perplexity.pdf", caption="../report/lm_perplexity.rst", category="Language model"),
        png=FIG + "/lm_perplexity.png",
    log:
        LOGS + "/lm/perplexity_figure.log",
    benchmark:
        BENCH + "/lm_perplexity_figure.tsv"
    params:
        generations=" ".join(str(g) for g in LM["histogram_generations"]),
    threads: 1
    shell:
        "{PY} lm figure --kind perplexity --results {input} --generations {params.generations}"
        " --out {output.pdf} > {log} 2>&1"


rule lm_metrics_figure:
    input:
        f"{LM_DIR}/summary.csv",
    output:
        pdf=report(FIG + "/lm_metrics.pdf", caption="../report/lm_metrics.rst", category="Language model"),
        png=FIG + "/lm_metrics.png",
    log:
        LOGS + "/lm/metrics_figure.log",
    benchmark:
        BENCH + "/lm_metrics_figure.tsv"
    threads: 1
    shell:
        "{PY} lm figure --kind metrics --summary {input} --out {output.pdf} > {log} 2>&1"


rule lm_table:
    input:
        summary=f"{LM_DIR}/summary.csv",
        results=LM_CHAINS,
    output:
        table=GEN + "/lm_table.tex",
        examples=GEN + "/lm_examples.tex",
        numbers=GEN + "/lm_numbers.tex",
    log:
        LOGS + "/lm/table.log",
    benchmark:
        BENCH + "/lm_table.tsv"
    params:
        generations=" ".join(str(g) for g in LM["example_generations"]),
    threads: 1
    shell:
        "{PY} lm table --summary {input.summary} --results {input.results} --generations {params.generations}"
        " --table {output.table} --examples {output.examples} --numbers {output.numbers} > {log} 2>&1"


rule lm_verify_summarize:
    input:
        LM_VERIFY_CHAINS,
    output:
        csv=f"{LM_DIR}/verify_summary.csv",
        provenance=f"{LM_DIR}/verify_summary.csv.provenance.json",
    log:
        LOGS + "/lm/verify_summarize.log",
    benchmark:
        BENCH + "/lm_verify_summarize.tsv"
    threads: 1
    shell:
        "{PY} lm summarize --out {output.csv} {input} > {log} 2>&1"


rule lm_verify_figure:
    input:
        f"{LM_DIR}/verify_summary.csv",
    output:
        pdf=report(FIG + "/lm_verify.pdf", caption="../report/lm_verify.rst", category="Language model"),
        png=FIG + "/lm_verify.png",
    log:
        LOGS + "/lm/verify_figure.log",
    benchmark:
        BENCH + "/lm_verify_figure.tsv"
    threads: 1
    shell:
        "{PY} lm figure --kind verify --summary {input} --out {output.pdf} > {log} 2>&1"


rule lm_verify_numbers:
    input:
        f"{LM_DIR}/verify_summary.csv",
    output:
        numbers=GEN + "/lm_verify_numbers.tex",
    log:
        LOGS + "/lm/verify_numbers.log",
    benchmark:
        BENCH + "/lm_verify_numbers.tsv"
    threads: 1
    shell:
        "{PY} lm verify-numbers --summary {input} --out {output.numbers} > {log} 2>&1"
