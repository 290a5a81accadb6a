# Discrete resampling (Wright-Fisher) chains from a Zipf distribution: simulate each M, one
# absorption run and one verification run (issue 21: Wright-Fisher with selection), summarize
# against the exact theory, plot, tabulate.

RESULTS.extend([RES + "/discrete/summary.csv", RES + "/discrete/ranks.csv", RES + "/discrete/absorption.csv",
                RES + "/discrete/verify.csv", RES + "/discrete/verify_symbols.csv"])
FIGURES.extend([FIG + "/discrete.pdf", FIG + "/discrete_verify.pdf"])
PAPER_INPUTS.extend([GEN + "/discrete_table.tex", GEN + "/discrete_absorption.tex",
                     GEN + "/discrete_numbers.tex", GEN + "/discrete_verify_numbers.tex"])


def discrete_regime_label():
    return Regime.from_config(config["discrete"]["regime"]).label


def discrete_results():
    return expand(RES + "/discrete/{regime}_M{m}.npz", regime=discrete_regime_label(),
                  m=config["discrete"]["sample_sizes"])


rule discrete_simulate:
    output:
        npz=RES + "/discrete/{regime}_M{m}.npz",
        provenance=RES + "/discrete/{regime}_M{m}.npz.provenance.json",
    log:
        LOGS + "/discrete/simulate_{regime}_M{m}.log",
    benchmark:
        BENCH + "/discrete_simulate_{regime}_M{m}.tsv"
    wildcard_constraints:
        regime=r"[A-Za-z0-9_.\-]+",
        m=r"\d+",
    params:
        config=config_json("discrete"),
    threads: 1
    resources:
        **SIMULATION,
    shell:
        "{PY} discrete simulate --config-json {params.config:q} --sample-size {wildcards.m}"
        " --out {output.npz} > {log} 2>&1"


rule discrete_absorption_simulate:
    output:
        npz=RES + "/discrete/absorption.npz",
        provenance=RES + "/discrete/absorption.npz.provenance.json",
    log:
        LOGS + "/discrete/simulate_absorption.log",
    benchmark:
        BENCH + "/discrete_simulate_absorption.tsv"
    params:
        config=config_json("discrete"),
    threads: 1
    resources:
        **SIMULATION,
    shell:
        "{PY} discrete simulate --config-json {params.config:q} --part absorption --keep final"
        " --out {output.npz} > {log} 2>&1"


rule discrete_summarize:
    input:
        discrete_results(),
    output:
        csv=RES + "/discrete/summary.csv",
        ranks=RES + "/discrete/ranks.csv",
        provenance=RES + "/discrete/summary.csv.provenance.json",
    log:
        LOGS + "/discrete/summarize.log",
    benchmark:
        BENCH + "/discrete_summarize.tsv"
    params:
        generations=" ".join(str(g) for g in config["discrete"]["table_generations"]),
    threads: 1
    shell:
        "{PY} discrete summarize --ranks-out {output.ranks} --rank-generations {params.generations}"
        " --out {output.csv} {input} > {log} 2>&1"


rule discrete_absorption:
    input:
        RES + "/discrete/absorption.npz",
    output:
        csv=RES + "/discrete/absorption.csv",
        provenance=RES + "/discrete/absorption.csv.provenance.json",
    log:
        LOGS + "/discrete/absorption.log",
    benchmark:
        BENCH + "/discrete_absorption.tsv"
    threads: 1
    shell:
        "{PY} discrete absorption --out {output.csv} {input} > {log} 2>&1"


rule discrete_figure:
    input:
        summary=RES + "/discrete/summary.csv",
        ranks=RES + "/discrete/ranks.csv",
    output:
        pdf=report(FIG + "/discrete.pdf", caption="../report/discrete.rst", category="Discrete"),
        png=FIG + "/discrete.png",
    log:
        LOGS + "/discrete/figure.log",
    benchmark:
        BENCH + "/discrete_figure.tsv"
    threads: 1
    shell:
        "{PY} discrete figure --summary {input.summary} --ranks {input.ranks} --out {output.pdf} > {log} 2>&1"


rule discrete_table:
    input:
        summary=RES + "/discrete/summary.csv",
        absorption=RES + "/discrete/absorption.csv",
    output:
        table=GEN + "/discrete_table.tex",
        absorption=GEN + "/discrete_absorption.tex",
        numbers=GEN + "/discrete_numbers.tex",
    log:
        LOGS + "/discrete/table.log",
    benchmark:
        BENCH + "/discrete_table.tsv"
    params:
        generations=" ".join(str(g) for g in config["discrete"]["table_generations"]),
    threads: 1
    shell:
        "{PY} discrete table --summary {input.summary} --absorption {input.absorption}"
        " --generations {params.generations} --table {output.table}"
        " --absorption-table {output.absorption} --numbers {output.numbers} > {log} 2>&1"


# The verification run: the neutral chain and one chain family per verifier width in one job.
rule discrete_verify_simulate:
    output:
        npz=RES + "/discrete/verify.npz",
        provenance=RES + "/discrete/verify.npz.provenance.json",
    log:
        LOGS + "/discrete/simulate_verify.log",
    benchmark:
        BENCH + "/discrete_simulate_verify.tsv"
    params:
        config=config_json("discrete"),
    threads: 1
    resources:
        **SIMULATION,
    shell:
        "{PY} discrete simulate --config-json {params.config:q} --part verify --out {output.npz} > {log} 2>&1"


rule discrete_verify:
    input:
        RES + "/discrete/verify.npz",
    output:
        csv=RES + "/discrete/verify.csv",
        symbols=RES + "/discrete/verify_symbols.csv",
        provenance=RES + "/discrete/verify.csv.provenance.json",
    log:
        LOGS + "/discrete/verify.log",
    benchmark:
        BENCH + "/discrete_verify.tsv"
    threads: 1
    shell:
        "{PY} discrete verify --out {output.csv} --symbols-out {output.symbols} {input} > {log} 2>&1"


rule discrete_verify_figure:
    input:
        summary=RES + "/discrete/verify.csv",
        symbols=RES + "/discrete/verify_symbols.csv",
    output:
        pdf=report(FIG + "/discrete_verify.pdf", caption="../report/discrete_verify.rst", category="Discrete"),
        png=FIG + "/discrete_verify.png",
    log:
        LOGS + "/discrete/verify_figure.log",
    benchmark:
        BENCH + "/discrete_verify_figure.tsv"
    threads: 1
    shell:
        "{PY} discrete verify-figure --summary {input.summary} --symbols {input.symbols} --out {output.pdf}"
        " > {log} 2>&1"


rule discrete_verify_numbers:
    input:
        summary=RES + "/discrete/verify.csv",
        symbols=RES + "/discrete/verify_symbols.csv",
    output:
        GEN + "/discrete_verify_numbers.tex",
    log:
        LOGS + "/discrete/verify_numbers.log",
    benchmark:
        BENCH + "/discrete_verify_numbers.tsv"
    threads: 1
    shell:
        "{PY} discrete verify-numbers --summary {input.summary} --symbols {input.symbols} --numbers {output}"
        " > {log} 2>&1"
