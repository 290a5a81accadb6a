# The exponential family (examples/exponential): one simulation per regime, one figure.
# To use it, copy it to workflow/rules/exponential.smk (the Snakefile includes every rules file
# there), add the `exponential:` block to config/*.yaml, and copy exponential.schema.yaml to
# src/modelcollapse/schemas/exponential.yaml.

import json
import re
import sys
from pathlib import Path

# The repository root, so that `examples` imports from here (once the family lives in
# src/modelcollapse this line goes, and EXP_PY becomes PY with the subcommand `exponential`).
sys.path.insert(0, str(Path(workflow.current_basedir).parents[1]))
import examples.exponential.window  # noqa: E402  registers the 'window' regime
from modelcollapse import knobs  # noqa: E402
from modelcollapse.regimes import label as regime_label  # noqa: E402

EXP = config["exponential"]
EXP_PY = f'"{sys.executable}" -m examples.exponential.cli'
# File-name label -> regime as written in the config ('replace', {name: window, k: 5} -> 'window-k5').
EXP_REGIMES = {regime_label(r): ({"name": r} if isinstance(r, str) else dict(r)) for r in EXP["regimes"]}
EXP_RESULTS = expand("results/exponential/{regime}.npz", regime=EXP_REGIMES)

RESULTS.extend(EXP_RESULTS)
FIGURES.append("figures/exponential.pdf")


def exp_regime_args(wildcards):
    regime = EXP_REGIMES[wildcards.regime]
    params = "".join(f" --regime-param {k}={json.dumps(v)}" for k, v in sorted(regime.items()) if k != "name")
    return f"--regime {regime['name']}{params}"


rule exponential_simulate:
    output:
        npz="results/exponential/{regime}.npz",
        provenance="results/exponential/{regime}.npz.provenance.json",
    log:
        "logs/exponential/simulate_{regime}.log",
    benchmark:
        "results/timings/exponential_simulate_{regime}.tsv"
    wildcard_constraints:
        regime="|".join(re.escape(label) for label in EXP_REGIMES),
    params:
        knobs=knobs.flags("examples.exponential.exponential:ExponentialConfig", EXP),
        regime=exp_regime_args,
        seed=config["seed"],
        platform=config["platform"],
    threads: 1
    shell:
        "{EXP_PY} simulate --seed {params.seed} {params.knobs} {params.regime} --platform {params.platform}"
        " --out {output.npz} > {log} 2>&1"


rule exponential_figure:
    input:
        EXP_RESULTS,
    output:
        pdf=report("figures/exponential.pdf", caption="exponential.rst", category="Exponential (example)"),
        png="figures/exponential.png",
    log:
        "logs/exponential/figure.log",
    benchmark:
        "results/timings/exponential_figure.tsv"
    threads: 1
    shell:
        "{EXP_PY} figure --results {input} --out {output.pdf} > {log} 2>&1"
