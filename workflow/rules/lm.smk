# The recursive language model (Nature Fig. 1b,c): the corpus is tokenized once; one resumable job
# per (regime, chain); with init: base a base model is pretrained first; summary, figures, tables.
# With lm.model.arch: opt the base is the pretrained checkpoint lm.model.pretrained (a folder under
# data_dir, read by the corpus and chain jobs themselves, so the DAG does not need it): no pretrain job.

from modelcollapse.commands.lm import COMPARISONS, regime_entries

LM = config["lm"]
LM_DIR = f"{RES}/lm/{LM['corpus']['name']}"
LM_CHAIN = f"{LM_DIR}/{{label}}/chain{{chain}}.npz"
LM_CHAINS = expand(LM_CHAIN, label=[entry["label"] for entry in LM["regimes"]], chain=range(LM["chains"]))
# Comparison blocks (lm.verify: verifiers, synthetic language only; lm.penalty: beam search's repetition
# penalty): each block's own regimes' chains and the main regimes' chains it compares them with, and
# its summary, figure and numbers.
LM_COMPARISONS = {name: LM[name] for name in COMPARISONS if name in LM}
LM_COMPARISON_CHAINS = {
    name: expand(LM_CHAIN, label=[entry["label"] for entry in block["regimes"]], chain=range(block["chains"]))
    + expand(LM_CHAIN, label=block["compare"], chain=range(LM["chains"]))
    for name, block in LM_COMPARISONS.items()
}
LM_LABELS = [entry["label"] for entry in regime_entries(LM)]
LM_BLOCK_PATTERN = "|".join(LM_COMPARISONS) or "(?!)"  # {block}: a comparison block present (none: no match)
# The base model's and the chains' jobs declare two threads: XLA runs their steps on every core (one
# chain alone: 1.4 cores busy), so on the 2-core machine two chains side by side each took twice
# as long as one alone (the VA chain: 165 s paired, 77 s alone) and gained nothing; declared as one
# thread, their Snakemake job times counted each core-second twice.
LM_THREADS = 2

RESULTS.append(f"{LM_DIR}/summary.csv")
FIGURES.extend([FIG + "/lm_perplexity.pdf", FIG + "/lm_metrics.pdf"])
PAPER_INPUTS.extend([GEN + "/lm_table.tex", GEN + "/lm_examples.tex",
                     GEN + "/lm_numbers.tex"])
for name in LM_COMPARISONS:
    RESULTS.append(f"{LM_DIR}/{name}_summary.csv")
    FIGURES.append(f"{FIG}/lm_{name}.pdf")
    PAPER_INPUTS.append(f"{GEN}/lm_{name}_numbers.tex")


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
    threads: LM_THREADS
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
    threads: LM_THREADS
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


rule lm_compare_summarize:
    input:
        lambda wildcards: LM_COMPARISON_CHAINS[wildcards.block],
    output:
        csv=f"{LM_DIR}/{{block}}_summary.csv",
        provenance=f"{LM_DIR}/{{block}}_summary.csv.provenance.json",
    log:
        LOGS + "/lm/{block}_summarize.log",
    benchmark:
        BENCH + "/lm_{block}_summarize.tsv"
    wildcard_constraints:
        block=LM_BLOCK_PATTERN,
    threads: 1
    shell:
        "{PY} lm summarize --out {output.csv} {input} > {log} 2>&1"


rule lm_compare_figure:
    input:
        f"{LM_DIR}/{{block}}_summary.csv",
    output:
        pdf=report(FIG + "/lm_{block}.pdf", caption="../report/lm_compare.rst", category="Language model"),
        png=FIG + "/lm_{block}.png",
    log:
        LOGS + "/lm/{block}_figure.log",
    benchmark:
        BENCH + "/lm_{block}_figure.tsv"
    wildcard_constraints:
        block=LM_BLOCK_PATTERN,
    threads: 1
    shell:
        "{PY} lm figure --kind {wildcards.block} --summary {input} --out {output.pdf} > {log} 2>&1"


rule lm_compare_numbers:
    input:
        f"{LM_DIR}/{{block}}_summary.csv",
    output:
        numbers=GEN + "/lm_{block}_numbers.tex",
    log:
        LOGS + "/lm/{block}_numbers.log",
    benchmark:
        BENCH + "/lm_{block}_numbers.tsv"
    wildcard_constraints:
        block=LM_BLOCK_PATTERN,
    threads: 1
    shell:
        "{PY} lm compare-numbers --block {wildcards.block} --summary {input} --out {output.numbers} > {log} 2>&1"
