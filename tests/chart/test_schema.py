"""Bad values fail at install time, before anything reaches the cluster, with a message
that names the value and what to do; no secret that was given is printed back."""

from __future__ import annotations

import pytest

from .helm import template

SECRET = "FAKE-secret-3f9a-MUST-NOT-BE-PRINTED"
SWEEP = {"name": "s", "sweep": {"params": {"optimizer.lr": [0.1, 0.01]}}}

REFUSED = {
    "negative parallelism": ({"job": SWEEP, "parallelism": -1}, "at '/parallelism': minimum"),
    "zero parallelism": ({"job": SWEEP, "parallelism": 0}, "at '/parallelism': minimum"),
    "negative retries": ({"backoffLimitPerIndex": -1}, "at '/backoffLimitPerIndex': minimum"),
    "a misspelt top-level key": (
        {"paralelism": 4},
        "additional properties 'paralelism' not allowed",
    ),
    "an unknown job key": (
        {"job": {"name": "x", "sweeps": {}}},
        "at '/job': additional properties 'sweeps' not allowed",
    ),
    "an unknown sweep key": (
        {"job": {"name": "x", "sweep": {"params": {"a": [1]}, "num_point": 3}}},
        "at '/job/sweep': additional properties 'num_point' not allowed",
    ),
    "an unknown strategy": (
        {"job": {"name": "x", "sweep": {"strategy": "bayes", "params": {"a": [1]}}}},
        "at '/job/sweep/strategy'",
    ),
    "random without num_points": (
        {"job": {"name": "x", "sweep": {"strategy": "random", "params": {"a": [1]}}}},
        "missing property 'num_points'",
    ),
    "a sweep without params": (
        {"job": {"name": "x", "sweep": {"strategy": "grid"}}},
        "missing property 'params'",
    ),
    "a swept key without values": (
        {"job": {"name": "x", "sweep": {"params": {"a": []}}}},
        "at '/job/sweep/params/a': minItems",
    ),
    "a local output": ({"output": "/data/runs"}, "at '/output'"),
    "an output with a trailing slash": ({"output": "s3://bucket/runs/"}, "at '/output'"),
    "a negative grace period": (
        {"terminationGracePeriodSeconds": -1},
        "at '/terminationGracePeriodSeconds': minimum",
    ),
    "a bad shm size": ({"shmSize": "lots"}, "at '/shmSize'"),
    "a bad pull policy": ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy'"),
    "W&B without its Secret": ({"wandb": {"enabled": True}}, "at '/wandb/existingSecret'"),
    # Literal secrets: no place for keys in values, and every escape route is closed.
    "S3 keys in values": (
        {"credentials": {"existingSecret": "s3", "secretAccessKey": SECRET}},
        "at '/credentials': additional properties 'secretAccessKey' not allowed",
    ),
    "a W&B key in values": (
        {"wandb": {"enabled": True, "apiKey": SECRET}},
        "at '/wandb': additional properties 'apiKey' not allowed",
    ),
    "a secret in extraEnv": (
        {"extraEnv": [{"name": "AWS_SECRET_ACCESS_KEY", "value": SECRET}]},
        "no literal secrets in extraEnv: use valueFrom.secretKeyRef",
    ),
    "a W&B key in extraEnv": (
        {"extraEnv": [{"name": "WANDB_API_KEY", "value": SECRET}]},
        "no literal secrets in extraEnv",
    ),
    "a secret in overrides": (
        {"overrides": [f"logger.api_key={SECRET}"]},
        "no literal secrets in overrides",
    ),
    "a secret in the job's overrides": (
        {"job": {"name": "x", "overrides": [f"storage.secret_access_key={SECRET}"]}},
        "no literal secrets in overrides",
    ),
    "credentials in the data URL": (
        {"data": {"source": f"https://user:{SECRET}@data.example.com/nature_12K.zip"}},
        "no credentials in URLs",
    ),
    "credentials in an overridden URL": (
        {"overrides": [f"data.source=https://user:{SECRET}@data.example.com/x.zip"]},
        "no credentials in URLs",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_values_are_refused_by_the_schema(case):
    values, message = REFUSED[case]
    done = template(values={"job": {"name": "x"}, **values})
    assert done.returncode != 0
    assert "don't meet the specifications of the schema" in done.stderr
    assert message in done.stderr
    assert SECRET not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"output": ""}, "output: set the s3:// URI that run directories go to"),
        ({"job": {"name": ""}}, "job.name: install with a job file, e.g. -f jobs/smoke.yaml"),
    ],
)
def test_required_values_say_what_to_set(values, message):
    done = template(values={"job": {"name": "x"}, **values})
    assert done.returncode != 0
    assert message in done.stderr


def test_values_that_look_alike_but_are_fine_are_accepted():
    done = template(
        values={
            "job": {"name": "x", "overrides": ["model.tokens_per_batch_is_not_a_key"]},
            "extraEnv": [
                {"name": "NCCL_DEBUG", "value": "INFO"},
                {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "t"}}},
            ],
            "data": {"source": "https://data.example.com/nature_12K.zip"},
            "overrides": ["data.source=s3://bucket/data/nature_12K.zip"],
        }
    )
    assert done.returncode == 0, done.stderr
