"""Each family's typed config and its schema block declare the same knobs (issue 19: a knob
declared in several places drifts). A block key is a field of the job's config class, or a key
listed here with what it is instead; a field is a block key, or listed with where it comes from.
A new knob on one side only fails here until the other side has it, or the list says why not."""

import dataclasses

import pytest

from modelcollapse import config, discrete, gaussian, gmm, regression
from modelcollapse.lm import experiment as lm_experiment
from modelcollapse.vae import experiment as vae_experiment

SPECS = {
    # family: (config class, {block key: what it is}, {field: where its value comes from})
    "gmm": (gmm.GMMConfig, {}, {"data": "the rule's selector --data (both data sets run)"}),
    "discrete": (discrete.DiscreteConfig,
                 {"sample_sizes": "one job per entry (its sample_size)", "table_generations": "the table's rows",
                  "absorption": "the absorption run's own block"},
                 {"sample_size": "an entry of sample_sizes"}),
    "gaussian": (gaussian.GaussianConfig,
                 {"sample_sizes": "one job per entry", "estimators": "one job per entry",
                  "table_generations": "the table's rows", "regimes": "the regime comparison's block",
                  "schedules": "the schedule comparison's block", "multivariate": "the d-dimensional block"},
                 {"sample_size": "an entry of sample_sizes", "estimator": "an entry of estimators",
                  "dim": "multivariate.dims", "correlation": "multivariate.correlation",
                  "sampler": "points, or stats for a schedule (config_from_block)"}),
    "regression": (regression.RegressionConfig, {"regimes": "one job per regime"},
                   {"regime": "an entry of regimes", "design_seed": "the config's seed"}),
    "vae": (vae_experiment.VAEConfig,
            {"dataset": "the data the chains read", "classifier": "the scorer's own block",
             "chains": "one job per chain", "regimes": "one job per regime", "validation_fraction":
             "the data split", "grid_generations": "the figure's columns", "table_generations": "the table's rows"},
            {"grid_images": "the library's default (the figure's grid)"}),
    "lm": (lm_experiment.LMConfig,
           {"corpus": "the corpus job's block", "chains": "one job per chain", "regimes": "one job per regime",
            "pretrain_epochs": "the base model's job", "pretrain_learning_rate": "the base model's job",
            "example_generations": "the examples table", "histogram_generations": "the histograms"},
           {"epochs": "the regime entry (lm.regimes[i].epochs)",
            **{k: "lm.decoding or the regime entry's overrides" for k in
               ("num_beams", "repetition_penalty", "length_penalty", "temperature", "top_k", "top_p")},
            "kl_blocks": "the library's default", "steps_per_call": "the library's default"}),
}


@pytest.mark.parametrize("family", sorted(SPECS))
def test_the_schema_block_and_the_config_class_declare_the_same_knobs(family):
    cls, block_only, field_only = SPECS[family]
    keys = set(config.schema()["properties"][family]["properties"])
    fields = {f.name for f in dataclasses.fields(cls)}
    assert keys - fields == set(block_only), "block keys that are no field: list them with what they are"
    assert fields - keys == set(field_only), "fields that are no block key: list them with their source"


def test_every_family_block_is_specified():
    families = {name for name, p in config.schema()["properties"].items() if p.get("type") == "object"}
    assert families - {"paper", "sweeps"} == set(SPECS)
