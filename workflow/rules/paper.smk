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


rule paper:
    input:
        tex="paper/main.tex",
        bib="paper/refs.bib",
        sections=sorted(glob.glob("paper/sections/*.tex")),
        generated=PAPER_INPUTS,
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
