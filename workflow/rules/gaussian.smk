# 1-D Gaussian fit-and-sample chains: simulate each (estimator, M), summarize, plot, tabulate.

RESULTS.append("results/gaussian/summary.csv")
FIGURES.append("figures/gaussian_fit.pdf")
PAPER_INPUTS.extend(["paper/generated/gaussian_table.tex", "paper/generated/gaussian_numbers.tex"])


def gaussian_results():
    g = config["gaussian"]
    return expand("results/gaussian/{estimator}_M{m}.npz", estimator=g["estimators"], m=g["sample_sizes"])


rule gaussian_simulate:
    output:
        npz="results/gaussian/{estimator}_M{m}.npz",
        provenance="results/gaussian/{estimator}_M{m}.npz.provenance.json",
    log:
        "logs/gaussian/simulate_{estimator}_M{m}.log",
    benchmark:
        "results/timings/gaussian_simulate_{estimator}_M{m}.tsv"
    wildcard_constraints:
        estimator="unbiased|mle",
        m=r"\d+",
    params:
        seed=config["seed"],
        platform=config["platform"],
        generations=config["gaussian"]["generations"],
        replicates=config["gaussian"]["replicates"],
    threads: 1
    shell:
        "{PY} gaussian simulate --seed {params.seed} --sample-size {wildcards.m}"
        " --generations {params.generations} --replicates {params.replicates}"
        " --estimator {wildcards.estimator} --platform {params.platform} --out {output.npz} > {log} 2>&1"


rule gaussian_summarize:
    input:
        gaussian_results(),
    output:
        csv="results/gaussian/summary.csv",
        provenance="results/gaussian/summary.csv.provenance.json",
    log:
        "logs/gaussian/summarize.log",
    benchmark:
        "results/timings/gaussian_summarize.tsv"
    threads: 1
    shell:
        "{PY} gaussian summarize --out {output.csv} {input} > {log} 2>&1"


rule gaussian_figure:
    input:
        "results/gaussian/summary.csv",
    output:
        pdf=report("figures/gaussian_fit.pdf", caption="../report/gaussian_fit.rst", category="Gaussian"),
        png="figures/gaussian_fit.png",
    log:
        "logs/gaussian/figure.log",
    benchmark:
        "results/timings/gaussian_figure.tsv"
    threads: 1
    shell:
        "{PY} gaussian figure --summary {input} --out {output.pdf} > {log} 2>&1"


rule gaussian_table:
    input:
        "results/gaussian/summary.csv",
    output:
        table="paper/generated/gaussian_table.tex",
        numbers="paper/generated/gaussian_numbers.tex",
    log:
        "logs/gaussian/table.log",
    benchmark:
        "results/timings/gaussian_table.tsv"
    params:
        generations=" ".join(str(g) for g in config["gaussian"]["table_generations"]),
        replicates=config["gaussian"]["replicates"],
    threads: 1
    shell:
        "{PY} gaussian table --summary {input} --generations {params.generations}"
        " --replicates {params.replicates} --table {output.table} --numbers {output.numbers} > {log} 2>&1"
