# modelcollapse: the model-collapse experiments of Shumailov et al. (Nature 2024) as one DAG.
# Run: `make reproduce` (or `snakemake --cores all`); one figure: `snakemake figures/default/gaussian_fit.pdf`.
# The config is config/config.yaml, or the file given with --configfile (complete by itself);
# outputs go to results/<run>/, figures/<run>/ and paper/<run>/ (workflow/rules/common.smk).
from snakemake.utils import min_version

min_version("8.0")


include: "workflow/rules/common.smk"


# Every family's rules file, found by its presence (a new family adds its file, not a line here).
for _rules in family_rules_files():
    include: _rules


include: "workflow/rules/paper.smk"  # last: it collects the others' outputs


# Figures, tables, numbers and the PDF are seconds of work on files other jobs wrote: on a cluster
# they run beside Snakemake instead of waiting in the queue. Matched by name, so a new family's
# *_figure, *_table and *_numbers rules follow without a list.
workflow.localrules(*[r.name for r in workflow.rules if LOCAL_RULES.search(r.name)])


rule all:
    default_target: True
    input:
        all_targets(),


rule figures:
    input:
        FIGURES,
