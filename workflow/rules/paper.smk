# The paper: reproducibility appendix from the effective config, then latexmk on paper/main.tex
# with this run's generated files and figures (paper/<run>/main.pdf).
# Included last: its inputs are the lists every family's rules file extended.


rule paper_provenance:
    output:
        GEN + "/provenance.tex",
    log:
        LOGS + "/paper/provenance.log",
    params:
        config=config_json(),
    threads: 1
    shell:
        "{PY} paper provenance --config-json {params.config:q} --out {output} > {log} 2>&1"


# One \input per numbers file that the families' rules files listed in PAPER_INPUTS (main.tex reads
# numbers.tex, so a new family's numbers need no edit of main.tex).
rule paper_numbers:
    input:
        [path for path in PAPER_INPUTS if path.endswith("_numbers.tex")],
    output:
        GEN + "/numbers.tex",
    log:
        LOGS + "/paper/numbers.log",
    threads: 1
    shell:
        "{PY} paper numbers --out {output} {input} > {log} 2>&1"


# Wall times of every job for the appendix: it waits for all other paper inputs and figures, then
# reads the benchmark files their jobs wrote (the one generated file that differs between runs).
rule paper_timings:
    input:
        PAPER_INPUTS,
        FIGURES,
    output:
        GEN + "/timings.tex",
    log:
        LOGS + "/paper/timings.log",
    params:
        timings=BENCH + "/*.tsv",
    threads: 1
    shell:
        "{PY} paper timings --out {output} {params.timings} > {log} 2>&1"


rule paper:
    input:
        tex="paper/main.tex",
        bib="paper/refs.bib",
        sections=sorted(glob.glob("paper/sections/*.tex")),
        generated=PAPER_INPUTS,
        numbers=GEN + "/numbers.tex",
        timings=GEN + "/timings.tex",
        figures=FIGURES,
    output:
        report(PAPER + "/main.pdf", caption="../report/paper.rst", category="Paper"),
    log:
        LOGS + "/paper/build.log",
    benchmark:
        BENCH + "/paper.tsv"
    params:
        generated=GEN,
        figures=FIG,
    threads: 1
    shell:
        "{PY} paper build --tex {input.tex} --generated {params.generated} --figures {params.figures}"
        " --out {output} > {log} 2>&1"
