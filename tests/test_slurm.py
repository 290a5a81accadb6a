"""The Slurm profile on a running Slurm cluster: the smoke workflow submitted job by job through
`sbatch` to a one-node cluster (tests/cluster/slurm-up.sh, Debian's slurm-wlm + munge), its files
byte-identical to a local run, and a job that fails on the cluster stopping Snakemake with the
rule's log named. The cluster is torn down whatever happens.

Needs root, Debian's `slurm-wlm` and `munge`, and the executor plugin (`pip install -e '.[slurm]'`,
part of '.[dev]'). Elsewhere the tests skip with the reason; under CI (CI=true, where `.ci/run`
installs them) a missing piece is a failure, not a skip.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, produced, smoke_copy

pytestmark = pytest.mark.slow
CLUSTER = ROOT / "tests" / "cluster"
# The test cluster's status polling: every 2 s instead of the plugin's production 40 s start.
FAST_POLLING = ("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
                "--seconds-between-status-checks", "2")


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (slurmd launches the jobs)"
    for program in ("munged", "slurmctld", "slurmd", "sbatch", "squeue"):
        if shutil.which(program) is None:
            return f"'{program}' not found: apt-get install slurm-wlm munge (.ci/run does)"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm not installed: pip install -e '.[slurm]'"
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Slurm test: {reason}")
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("slurm")
    env = dict(os.environ, MC_SLURM_DIR=str(folder))
    try:
        up = subprocess.run([str(CLUSTER / "slurm-up.sh")], env=env, capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stdout + up.stderr
        yield {**env, "SLURM_CONF": str(folder / "slurm.conf")}
    finally:
        down = subprocess.run([str(CLUSTER / "slurm-down.sh")], env=env, capture_output=True, text=True,
                              timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr


def _snakemake(repo, env, *args):
    return subprocess.run([sys.executable, "-m", "snakemake", "--configfile", "config/smoke.yaml",
                           "--workflow-profile", "workflow/profiles/slurm", *FAST_POLLING, *args],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    repo = smoke_copy(tmp_path_factory, "slurm_repo")
    run = _snakemake(repo, cluster)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return repo, run.stdout + run.stderr


def _submitted(log: str) -> dict[str, str]:
    """Slurm job id -> rule, from Snakemake's 'submitted with SLURM jobid' lines."""
    found = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_([A-Za-z0-9_]+)/", log)
    return {job: rule for job, rule in found}


def _slurm_records(env) -> dict[str, dict[str, str]]:
    """Slurm's own records of every finished job (the job-completion file slurm-up.sh configures),
    with the rule named in the comment that slurmctld still holds (MinJobAge)."""
    text = (Path(env["MC_SLURM_DIR"]) / "log" / "jobcomp.txt").read_text()
    records = {}
    for line in text.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        records[fields["JobId"]] = fields
    queue = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%i|%k"], env=env,
                           capture_output=True, text=True, check=True).stdout
    for line in queue.splitlines():
        job, comment = line.split("|", 1)
        if job in records:
            records[job]["Comment"] = comment
    return records


def test_every_job_ran_through_sbatch_and_completed(slurm_run, cluster):
    repo, log = slurm_run
    submitted = _submitted(log)
    steps = re.findall(r"(\d+) of (\d+) steps \(100%\) done", log)
    assert steps, log[-2000:]
    total = int(steps[-1][1])
    # Every job went to the cluster but the target rule `all` (which runs nothing) and the local
    # rules (common.smk's LOCAL_RULES): figures, tables, numbers and the PDF, seconds of work each.
    local = [rule for rule in re.findall(r"localrule (\w+):", log) if rule != "all"]
    assert local and all(re.search(r"(_figure|_table|_numbers)$|^paper(_numbers|_timings)?$", r) for r in local)
    assert len(submitted) + len(local) == total - 1, (len(submitted), len(local), total)
    records = _slurm_records(cluster)
    for job, rule in submitted.items():
        assert records[job]["JobState"] == "COMPLETED", records[job]
        assert records[job]["ExitCode"] == "0:0", records[job]
        assert records[job]["Comment"].startswith(f"rule_{rule}"), (records[job], rule)
    assert {"gaussian_simulate", "discrete_simulate", "gmm_simulate", "vae_chain", "lm_chain",
            "paper_provenance"} <= set(submitted.values())


def test_slurm_files_equal_a_local_run(slurm_run, smoke_run):
    on_cluster, local = produced(slurm_run[0]), produced(smoke_run)
    assert on_cluster.keys() == local.keys()
    # provenance records name the run's folder; timings.tex holds wall times: both legitimately differ
    differ = [name for name in local if local[name] != on_cluster[name]
              and not name.endswith(".provenance.json") and name != "paper/smoke/generated/timings.tex"]
    assert differ == []


def test_a_job_failing_on_the_cluster_stops_snakemake_naming_its_log(slurm_run, cluster):
    repo, _ = slurm_run
    # A corrupt chain file: the summary job that reads it fails on the cluster.
    chains = sorted((repo / "results" / "smoke" / "gaussian").glob("*.npz"))
    chains[0].write_bytes(b"not an npz file")
    run = _snakemake(repo, cluster, "--forcerun", "gaussian_summarize", "results/smoke/gaussian/summary.csv")
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert "Error in rule gaussian_summarize" in out
    assert "logs/smoke/gaussian/summarize.log" in out
    assert chains[0].name in out  # show-failed-logs: the rule's log, naming the bad file, is printed
