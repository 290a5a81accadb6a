# Least squares on its own labels: one job per regime, a summary beside the exact laws, the figure.

REGRESSION = {Regime.from_config(r).label: r for r in config["regression"]["regimes"]}
RESULTS.append(RES + "/regression/summary.csv")
FIGURES.append(FIG + "/regression_regimes.pdf")
PAPER_INPUTS.append(GEN + "/regression_numbers.tex")


rule regression_simulate:
    output:
        RES + "/regression/{label}.npz",
    log:
        LOGS + "/regression/{label}.log",
    benchmark:
        BENCH + "/regression_{label}.tsv"
    wildcard_constraints:
        label="|".join(re.escape(label) for label in REGRESSION),
    params:
        config=config_json("regression"),
    threads: 1
    resources:
        **SIMULATION,
    shell:
        "{PY} regression simulate --config-json {params.config:q} --label {wildcards.label:q}"
        " --out {output} > {log} 2>&1"


rule regression_summarize:
    input:
        expand(RES + "/regression/{label}.npz", label=list(REGRESSION)),
    output:
        RES + "/regression/summary.csv",
    log:
        LOGS + "/regression/summarize.log",
    threads: 1
    shell:
        "{PY} regression summarize --out {output} {input} > {log} 2>&1"


rule regression_figure:
    input:
        RES + "/regression/summary.csv",
    output:
        pdf=report(FIG + "/regression_regimes.pdf", caption="../report/regression_regimes.rst", category="Regression"),
        png=FIG + "/regression_regimes.png",
    log:
        LOGS + "/regression/figure.log",
    threads: 1
    shell:
        "{PY} regression figure --summary {input} --out {output.pdf} > {log} 2>&1"


rule regression_numbers:
    input:
        RES + "/regression/summary.csv",
    output:
        GEN + "/regression_numbers.tex",
    log:
        LOGS + "/regression/numbers.log",
    threads: 1
    shell:
        "{PY} regression numbers --summary {input} --out {output} > {log} 2>&1"
