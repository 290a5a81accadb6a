# 1-D Gaussian fit-and-sample chains: simulate each (estimator, M), summarize, plot, tabulate.

RESULTS.append(RES + "/gaussian/summary.csv")
FIGURES.append(FIG + "/gaussian_fit.pdf")
PAPER_INPUTS.extend([GEN + "/gaussian_table.tex", GEN + "/gaussian_numbers.tex"])


def gaussian_results():
    g = config["gaussian"]
    return expand(RES + "/gaussian/{estimator}_M{m}.npz", estimator=g["estimators"], m=g["sample_sizes"])


rule gaussian_simulate:
    output:
        npz=RES + "/gaussian/{estimator}_M{m}.npz",
        provenance=RES + "/gaussian/{estimator}_M{m}.npz.provenance.json",
    log:
        LOGS + "/gaussian/simulate_{estimator}_M{m}.log",
    benchmark:
        BENCH + "/gaussian_simulate_{estimator}_M{m}.tsv"
    wildcard_constraints:
        estimator="unbiased|mle",
        m=r"\d+",
    params:
        config=config_json("gaussian"),
    threads: 1
    resources:
        **SIMULATION,
    shell:
        "{PY} gaussian simulate --config-json {params.config:q} --sample-size {wildcards.m}"
        " --estimator {wildcards.estimator} --out {output.npz} > {log} 2>&1"


rule gaussian_summarize:
    input:
        gaussian_results(),
    output:
        csv=RES + "/gaussian/summary.csv",
        provenance=RES + "/gaussian/summary.csv.provenance.json",
    log:
        LOGS + "/gaussian/summarize.log",
    benchmark:
        BENCH + "/gaussian_summarize.tsv"
    threads: 1
    shell:
        "{PY} gaussian summarize --out {output.csv} {input} > {log} 2>&1"


rule gaussian_figure:
    input:
        RES + "/gaussian/summary.csv",
    output:
        pdf=report(FIG + "/gaussian_fit.pdf", caption="../report/gaussian_fit.rst", category="Gaussian"),
        png=FIG + "/gaussian_fit.png",
    log:
        LOGS + "/gaussian/figure.log",
    benchmark:
        BENCH + "/gaussian_figure.tsv"
    threads: 1
    shell:
        "{PY} gaussian figure --summary {input} --out {output.pdf} > {log} 2>&1"


rule gaussian_table:
    input:
        RES + "/gaussian/summary.csv",
    output:
        table=GEN + "/gaussian_table.tex",
        numbers=GEN + "/gaussian_numbers.tex",
    log:
        LOGS + "/gaussian/table.log",
    benchmark:
        BENCH + "/gaussian_table.tsv"
    params:
        generations=" ".join(str(g) for g in config["gaussian"]["table_generations"]),
        replicates=config["gaussian"]["replicates"],
    threads: 1
    shell:
        "{PY} gaussian table --summary {input} --generations {params.generations}"
        " --replicates {params.replicates} --table {output.table} --numbers {output.numbers} > {log} 2>&1"


# -- data-regime comparison ----------------------------------------------------------------------


REGIMES = {Regime.from_config(r).label: Regime.from_config(r) for r in config["gaussian"]["regimes"]["compare"]}
RESULTS.append(RES + "/gaussian/regimes/summary.csv")
FIGURES.append(FIG + "/gaussian_regimes.pdf")
PAPER_INPUTS.extend([GEN + "/gaussian_regimes_numbers.tex", GEN + "/gaussian_regimes_table.tex"])


rule gaussian_regime_simulate:
    output:
        RES + "/gaussian/regimes/{label}.npz",
    log:
        LOGS + "/gaussian/regimes/{label}.log",
    benchmark:
        BENCH + "/gaussian_regime_{label}.tsv"
    wildcard_constraints:
        label="|".join(re.escape(label) for label in REGIMES),
    params:
        config=config_json("gaussian"),
    threads: 1
    resources:
        **SIMULATION,
    shell:
        "{PY} gaussian simulate --config-json {params.config:q} --part regimes --label {wildcards.label:q}"
        " --out {output} > {log} 2>&1"


# -- sample-size schedules ------------------------------------------------------------------------

RESULTS.append(RES + "/gaussian/schedules/summary.csv")
FIGURES.append(FIG + "/gaussian_schedules.pdf")
PAPER_INPUTS.append(GEN + "/gaussian_schedules_numbers.tex")


rule gaussian_schedule_simulate:
    output:
        RES + "/gaussian/schedules/{kind}.npz",
    log:
        LOGS + "/gaussian/schedules/{kind}.log",
    benchmark:
        BENCH + "/gaussian_schedule_{kind}.tsv"
    wildcard_constraints:
        kind="constant|linear|superlinear",
    params:
        config=config_json("gaussian"),
    threads: 1
    resources:
        **SIMULATION,
    shell:
        "{PY} gaussian simulate --config-json {params.config:q} --part schedules --schedule {wildcards.kind}"
        " --out {output} > {log} 2>&1"


# -- d-dimensional Gaussian -----------------------------------------------------------------------

RESULTS.append(RES + "/gaussian/multivariate/summary.csv")
FIGURES.append(FIG + "/gaussian_multivariate.pdf")
PAPER_INPUTS.append(GEN + "/gaussian_multivariate_numbers.tex")


rule gaussian_multivariate_simulate:
    output:
        RES + "/gaussian/multivariate/d{dim}.npz",
    log:
        LOGS + "/gaussian/multivariate/d{dim}.log",
    benchmark:
        BENCH + "/gaussian_multivariate_d{dim}.tsv"
    wildcard_constraints:
        dim=r"\d+",
    params:
        config=config_json("gaussian"),
    threads: 1
    resources:
        **SIMULATION,
    shell:
        "{PY} gaussian simulate --config-json {params.config:q} --part multivariate --dim {wildcards.dim}"
        " --out {output} > {log} 2>&1"


# -- summaries, figures and numbers of the three sub-experiments ----------------------------------

SUB_EXPERIMENTS = {
    "regimes": expand(RES + "/gaussian/regimes/{label}.npz", label=list(REGIMES)),
    "schedules": expand(RES + "/gaussian/schedules/{kind}.npz", kind=config["gaussian"]["schedules"]["kinds"]),
    "multivariate": expand(RES + "/gaussian/multivariate/d{dim}.npz",
                           dim=config["gaussian"]["multivariate"]["dims"]),
}


rule gaussian_sub_summarize:
    input:
        lambda wildcards: SUB_EXPERIMENTS[wildcards.sub],
    output:
        RES + "/gaussian/{sub}/summary.csv",
    log:
        LOGS + "/gaussian/{sub}/summarize.log",
    benchmark:
        BENCH + "/gaussian_{sub}_summarize.tsv"
    wildcard_constraints:
        sub="regimes|schedules|multivariate",
    threads: 1
    shell:
        "{PY} gaussian summarize --out {output} {input} > {log} 2>&1"


rule gaussian_sub_figure:
    input:
        RES + "/gaussian/{sub}/summary.csv",
    output:
        pdf=report(FIG + "/gaussian_{sub}.pdf", caption="../report/gaussian_sub.rst", category="Gaussian"),
        png=FIG + "/gaussian_{sub}.png",
    log:
        LOGS + "/gaussian/{sub}/figure.log",
    wildcard_constraints:
        sub="regimes|schedules|multivariate",
    threads: 1
    shell:
        "{PY} gaussian figure --kind {wildcards.sub} --summary {input} --out {output.pdf} > {log} 2>&1"


rule gaussian_regimes_numbers:
    input:
        RES + "/gaussian/regimes/summary.csv",
    output:
        numbers=GEN + "/gaussian_regimes_numbers.tex",
        table=GEN + "/gaussian_regimes_table.tex",
    log:
        LOGS + "/gaussian/regimes/numbers.log",
    threads: 1
    shell:
        "{PY} gaussian numbers --kind regimes --summary {input} --out {output.numbers}"
        " --table {output.table} > {log} 2>&1"


rule gaussian_sub_numbers:
    input:
        RES + "/gaussian/{sub}/summary.csv",
    output:
        GEN + "/gaussian_{sub}_numbers.tex",
    log:
        LOGS + "/gaussian/{sub}/numbers.log",
    wildcard_constraints:
        sub="schedules|multivariate",
    threads: 1
    shell:
        "{PY} gaussian numbers --kind {wildcards.sub} --summary {input} --out {output} > {log} 2>&1"
