# Sweeps (modelcollapse.sweeps): one job per grid point of each `sweeps.<name>`, one tidy table per
# sweep, and the phase diagram of the sweeps that have a `figure` block.
from modelcollapse import sweeps as sweep_lib

SWEEPS = config["sweeps"]
RESULTS.extend(f"{RES}/sweeps/{name}.csv" for name in SWEEPS)
PHASE = [name for name, sweep in SWEEPS.items() if "figure" in sweep]
if PHASE:
    FIGURES.append(FIG + "/phase_diagram.pdf")
    PAPER_INPUTS.append(GEN + "/phase_numbers.tex")


def sweep_json(*names):
    """The config a sweep's jobs read: the shared keys, these sweeps and their families' blocks, so
    that a change to another sweep or family reruns none of them."""
    families = {SWEEPS[name]["family"] for name in names}
    part = {k: v for k, v in config.items() if not isinstance(v, dict) and k != "data_dir"}
    return json.dumps(part | {f: config[f] for f in families} | {"sweeps": {n: SWEEPS[n] for n in names}},
                      sort_keys=True)


rule sweep_point:
    output:
        RES + "/sweeps/{name}/point{point}.csv",
    log:
        LOGS + "/sweeps/{name}/point{point}.log",
    benchmark:
        BENCH + "/sweep_{name}_point{point}.tsv"
    wildcard_constraints:
        name="|".join(re.escape(name) for name in SWEEPS) or "^$",
        point=r"\d+",
    params:
        config=lambda wildcards: sweep_json(wildcards.name),
    threads: 1
    resources:
        **SIMULATION,
    shell:
        "{PY} sweep point --config-json {params.config:q} --sweep {wildcards.name} --point {wildcards.point}"
        " --out {output} > {log} 2>&1"


rule sweep_table:
    input:
        lambda wildcards: expand(RES + "/sweeps/{name}/point{point}.csv", name=wildcards.name,
                                 point=range(len(sweep_lib.points(SWEEPS[wildcards.name])))),
    output:
        RES + "/sweeps/{name}.csv",
    log:
        LOGS + "/sweeps/{name}/table.log",
    wildcard_constraints:
        name="|".join(re.escape(name) for name in SWEEPS) or "^$",
    threads: 1
    shell:
        "{PY} sweep table --out {output} {input} > {log} 2>&1"


rule sweep_phase_figure:
    input:
        [f"{RES}/sweeps/{name}.csv" for name in PHASE],
    output:
        pdf=report(FIG + "/phase_diagram.pdf", caption="../report/phase_diagram.rst", category="Sweeps"),
        png=FIG + "/phase_diagram.png",
    log:
        LOGS + "/sweeps/phase_figure.log",
    params:
        config=lambda wildcards: sweep_json(*PHASE),
    threads: 1
    shell:
        "{PY} sweep figure --config-json {params.config:q} --out {output.pdf} {input} > {log} 2>&1"


rule sweep_phase_numbers:
    input:
        [f"{RES}/sweeps/{name}.csv" for name in PHASE],
    output:
        GEN + "/phase_numbers.tex",
    log:
        LOGS + "/sweeps/phase_numbers.log",
    params:
        config=lambda wildcards: sweep_json(*PHASE),
    threads: 1
    shell:
        "{PY} sweep numbers --config-json {params.config:q} --out {output} {input} > {log} 2>&1"
