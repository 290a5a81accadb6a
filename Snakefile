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


rule all:
    default_target: True
    input:
        all_targets(),


rule figures:
    input:
        FIGURES,
