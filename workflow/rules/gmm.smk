# Gaussian mixtures fitted by EM (the paper's GMM figure): simulate each data set, summarize,
# plot (one chain's snapshot grid; the L2 distance to GMM_0 across chains), tabulate.


RESULTS.append(RES + "/gmm/summary.csv")
FIGURES.extend([FIG + "/gmm_snapshots.pdf", FIG + "/gmm_distance.pdf"])
PAPER_INPUTS.extend([GEN + "/gmm_table.tex", GEN + "/gmm_numbers.tex"])

# Both data sets always run: the paper section compares variance loss (one blob) with mode loss (two).
GMM_DATASETS = ["blob", "two_blobs"]
GMM_RESULTS = expand(RES + "/gmm/{data}.npz", data=GMM_DATASETS)


def gmm_table_generations():
    """The snapshot generations the chains reach: the figure's columns and the table's rows."""
    g = config["gmm"]
    return " ".join(str(s) for s in sorted(s for s in g["snapshots"] if s <= g["generations"]))


rule gmm_simulate:
    output:
        npz=RES + "/gmm/{data}.npz",
        provenance=RES + "/gmm/{data}.npz.provenance.json",
    log:
        LOGS + "/gmm/simulate_{data}.log",
    benchmark:
        BENCH + "/gmm_simulate_{data}.tsv"
    wildcard_constraints:
        data="|".join(GMM_DATASETS),
    params:
        config=config_json("gmm"),
    threads: 1
    resources:
        **SIMULATION,
    shell:
        "{PY} gmm simulate --config-json {params.config:q} --data {wildcards.data} --out {output.npz} > {log} 2>&1"


rule gmm_summarize:
    input:
        GMM_RESULTS,
    output:
        csv=RES + "/gmm/summary.csv",
        provenance=RES + "/gmm/summary.csv.provenance.json",
    log:
        LOGS + "/gmm/summarize.log",
    benchmark:
        BENCH + "/gmm_summarize.tsv"
    threads: 1
    shell:
        "{PY} gmm summarize --out {output.csv} {input} > {log} 2>&1"


rule gmm_distance_figure:
    input:
        RES + "/gmm/summary.csv",
    output:
        pdf=report(FIG + "/gmm_distance.pdf", caption="../report/gmm_distance.rst", category="Gaussian mixture"),
        png=FIG + "/gmm_distance.png",
    log:
        LOGS + "/gmm/distance_figure.log",
    benchmark:
        BENCH + "/gmm_distance_figure.tsv"
    threads: 1
    shell:
        "{PY} gmm figure --kind distance --summary {input} --out {output.pdf} > {log} 2>&1"


rule gmm_snapshots_figure:
    input:
        GMM_RESULTS,
    output:
        pdf=report(FIG + "/gmm_snapshots.pdf", caption="../report/gmm_snapshots.rst", category="Gaussian mixture"),
        png=FIG + "/gmm_snapshots.png",
    log:
        LOGS + "/gmm/snapshots_figure.log",
    benchmark:
        BENCH + "/gmm_snapshots_figure.tsv"
    threads: 1
    shell:
        "{PY} gmm figure --kind snapshots --results {input} --out {output.pdf} > {log} 2>&1"


rule gmm_table:
    input:
        RES + "/gmm/summary.csv",
    output:
        table=GEN + "/gmm_table.tex",
        numbers=GEN + "/gmm_numbers.tex",
    log:
        LOGS + "/gmm/table.log",
    benchmark:
        BENCH + "/gmm_table.tsv"
    params:
        generations=gmm_table_generations(),
        replicates=config["gmm"]["replicates"],
    threads: 1
    shell:
        "{PY} gmm table --summary {input} --generations {params.generations}"
        " --replicates {params.replicates} --table {output.table} --numbers {output.numbers} > {log} 2>&1"
