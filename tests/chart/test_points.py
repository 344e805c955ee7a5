"""The chart and inat.sweeps.jobs.expand agree on a job's points: how many (the Indexed Job's
completions, computed by the chart at template time) and which (the job file that the
pods read from the ConfigMap expands to the same points and names as the original)."""

from __future__ import annotations

from pathlib import Path

import pytest

from inat.sweeps.jobs import expand, load_job
from inat.sweeps.run import is_adaptive, probe_points
from inat.sweeps.search import parse_search
from inat.sweeps.worker import tasks

from .helm import JOB_FILES, lint, one, render

# Job files as a user writes them; the text matters (0.0, 1e-4, key order), so it is literal.
EDGE_JOBS = {
    "one-point-grid": """
job:
  name: one-point
  sweep:
    params:
      optimizer.lr: [0.1]
""",
    "many-points": """
job:
  name: many
  overrides: [trainer.epochs=1]
  sweep:
    strategy: grid
    params:
      optimizer.lr: [0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001]
      model.dropout: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
      data.batch_size: [16, 32, 64, 128, 256]
      model.activation: [relu, gelu, silu, mish]
""",
    "random-fewer-than-grid": """
job:
  name: random-few
  sweep:
    strategy: random
    num_points: 5
    seed: 7
    params:
      optimizer.lr: [0.1, 0.01, 0.001]
      model.dropout: [0.1, 0.2, 0.3, 0.4]
""",
    "random-more-than-grid": """
job:
  name: random-all
  sweep:
    strategy: random
    num_points: 50
    params:
      optimizer.lr: [0.1, 0.01, 0.001]
      model.batch_norm: [true, false]
""",
    # Helm keeps neither key order nor 0.0 vs 0, and reads 1e-4 as a number.
    "values-helm-rewrites": """
job:
  name: rewrites
  sweep:
    strategy: grid
    params:
      model.dropout: [0.0, 0.25, 1.0]
      optimizer.lr: [1e-4, 2.5e-3, 1.0e-2, 0.00001]
      data.batch_size: [32, 1000000]
      model.filters: [[32, 32, 32, 32, 32], [16, 32, 64, 128, 256]]
      model.activation: [relu, "0.5", null, yes]
      aaa.first_in_sort_order: [{b: 1, a: 2.0}]
""",
    "grammar-grid-nested": """
job:
  name: grammar-grid
  sweep:
    method: grid
    parameters:
      model:
        parameters:
          dropout: {values: [0.0, 0.3]}
          activation: {distribution: categorical, values: [relu, gelu, silu]}
      trainer.epochs: {value: 2}
""",
    "grammar-random-distributions": """
job:
  name: grammar-random
  sweep:
    method: random
    run_cap: 7
    seed: 3
    metric: {name: val_loss, goal: minimize}
    early_terminate: {type: hyperband, min_iter: 1, eta: 3}
    parameters:
      optimizer.lr: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0}
      model.dropout: {distribution: q_uniform, min: 0.0, max: 0.5, q: 0.1}
      model.activation: {values: [relu, gelu]}
""",
    "grammar-random-lists-fewer-than-cap": """
job:
  name: grammar-random-lists
  sweep:
    method: random
    sampler: qmc
    run_cap: 50
    parameters:
      model.activation: {values: [relu, gelu]}
      model.dropout: {values: [0.1, 0.2, 0.3]}
""",
    "bayes-workers-share-pods": """
job:
  name: bayes-shared
  sweep:
    method: bayes
    run_cap: 12
    parallelism: 5
    workers_per_gpu: 2
    parameters:
      optimizer.lr: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-1}
      model.activation: {values: [relu, gelu]}
""",
    "single-run": """
job:
  name: single
  overrides: [experiment=original_scratch, trainer.epochs=1]
""",
    "empty-sweep-is-a-single-run": """
job:
  name: single-empty
  sweep: {}
""",
}


@pytest.fixture(scope="module")
def job_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every jobs/*.yaml and every edge case, by name."""
    folder = tmp_path_factory.mktemp("jobs")
    files = {path.name: path for path in JOB_FILES}
    for name, text in EDGE_JOBS.items():
        files[name] = folder / f"{name}.yaml"
        files[name].write_text(text)
    return files


CASES = [path.name for path in JOB_FILES] + list(EDGE_JOBS)


def test_every_job_file_in_jobs_is_checked():
    assert {"demo_sweep.yaml", "scratch_sweep.yaml", "smoke.yaml"} <= {p.name for p in JOB_FILES}


@pytest.mark.parametrize("case", list(EDGE_JOBS))
def test_edge_cases_lint_clean(case, job_files):
    done = lint([job_files[case]])
    assert done.returncode == 0, done.stdout + done.stderr


def _completions(job: dict) -> int:
    """The pods inat runs the job in: one per point, an adaptive sweep's one per task."""
    if is_adaptive(job):
        return tasks(parse_search(job["name"], job["sweep"]))
    return len(expand(job))


@pytest.mark.parametrize("case", CASES)
def test_completions_are_the_number_of_points(case, job_files):
    path = job_files[case]
    job = one(render([path]), "Job")
    assert job["spec"]["completions"] == _completions(load_job(path))
    if load_job(path).get("sweep"):
        assert job["spec"]["completionMode"] == "Indexed"
    else:
        assert job["spec"]["completions"] == 1
        assert "completionMode" not in job["spec"]


@pytest.mark.parametrize("case", CASES)
def test_the_pods_job_file_expands_to_the_same_points(case, job_files, tmp_path):
    original = job_files[case]
    rendered = tmp_path / "job.yaml"
    rendered.write_text(one(render([original]), "ConfigMap")["data"]["job.yaml"])
    if is_adaptive(load_job(original)):  # the same space: the same probe points
        assert probe_points(load_job(rendered)) == probe_points(load_job(original))
    else:
        assert expand(load_job(rendered)) == expand(load_job(original))


def test_an_adaptive_sweeps_pods_run_the_workers_of_their_task(job_files):
    job = one(render([job_files["bayes-workers-share-pods"]]), "Job")
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3  # 5 workers, 2 a pod
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["sweep", "--task", "$(JOB_COMPLETION_INDEX)"]


def test_edge_cases_cover_what_they_claim(job_files):
    counts = {
        case: len(expand(load_job(job_files[case])))
        for case in EDGE_JOBS
        if not is_adaptive(load_job(job_files[case]))
    }
    assert counts["one-point-grid"] == 1
    assert counts["many-points"] == 2000
    assert counts["random-fewer-than-grid"] == 5
    assert counts["random-more-than-grid"] == 6
    assert counts["grammar-grid-nested"] == 6
    assert counts["grammar-random-distributions"] == 7
    assert counts["grammar-random-lists-fewer-than-cap"] == 6
    points = expand(load_job(job_files["values-helm-rewrites"]))
    assert len(points) == 3 * 4 * 2 * 2 * 4 * 1
    assert points[0].swept == (
        "aaa.first_in_sort_order={a:2,b:1}",
        "data.batch_size=32",
        "model.activation=relu",
        "model.dropout=0",
        "model.filters=[32,32,32,32,32]",
        "optimizer.lr=0.0001",
    )
