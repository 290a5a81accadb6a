# The paper: reproducibility appendix from the effective config, then latexmk.
# Included last: its inputs are the lists every family's rules file extended.


rule paper_provenance:
    output:
        "paper/generated/provenance.tex",
    log:
        "logs/paper/provenance.log",
    params:
        config=config_json(),
    threads: 1
    shell:
        "{PY} paper provenance --config-json {params.config:q} --out {output} > {log} 2>&1"


# Wall times of every job for the appendix: it waits for all other paper inputs and figures, then
# reads the benchmark files their jobs wrote (the one generated file that differs between runs).
rule paper_timings:
    input:
        PAPER_INPUTS,
        FIGURES,
    output:
        "paper/generated/timings.tex",
    log:
        "logs/paper/timings.log",
    threads: 1
    shell:
        "{PY} paper timings --out {output} results/timings/*.tsv > {log} 2>&1"


rule paper:
    input:
        tex="paper/main.tex",
        bib="paper/refs.bib",
        sections=sorted(glob.glob("paper/sections/*.tex")),
        generated=PAPER_INPUTS,
        timings="paper/generated/timings.tex",
        figures=FIGURES,
    output:
        report("paper/main.pdf", caption="../report/paper.rst", category="Paper"),
    log:
        "logs/paper/build.log",
    benchmark:
        "results/timings/paper.tsv"
    threads: 1
    shell:
        "{PY} paper build --tex {input.tex} --out {output} > {log} 2>&1"
