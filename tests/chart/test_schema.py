"""Bad values fail at install time, before anything reaches the cluster, with a message
that names the value and what to do; no secret that was given is printed back."""

from __future__ import annotations

import json
import re
from importlib import resources

import jsonschema
import pytest
import yaml

from inat.rundir import EPOCH_METRICS

from .helm import CHART, KUBERNETES_VERSIONS, template

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
SECRET = "FAKE-secret-3f9a-MUST-NOT-BE-PRINTED"
NO_AT = "at '/output': value must be 'no credentials (nor any @) in this URL"
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
        {"job": {"name": "x", "sweep": {"strategy": "hyperopt", "params": {"a": [1]}}}},
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
    # Devices come whole: a fraction or a suffix would be misread (2k: 2000 GPUs).
    "a fractional GPU count": (
        {"resources": {"requests": {"nvidia.com/gpu": "1.5"}}},
        "at '/resources/requests/nvidia.com~1gpu'",
    ),
    "a GPU count in thousandths": (
        {"resources": {"limits": {"nvidia.com/gpu": "1500m"}}},
        "at '/resources/limits/nvidia.com~1gpu'",
    ),
    "a GPU count in thousands": (
        {"resources": {"limits": {"nvidia.com/gpu": "2k"}}},
        "at '/resources/limits/nvidia.com~1gpu'",
    ),
    "a fractional GPU number": (
        {"resources": {"limits": {"nvidia.com/gpu": 1.5}}},
        "at '/resources/limits/nvidia.com~1gpu'",
    ),
    "a resource name Kubernetes does not know": (
        {"resources": {"requests": {"gpu": 1}}},
        "at '/resources/requests': additional properties 'gpu' not allowed",
    ),
    "a bad cpu quantity": ({"resources": {"requests": {"cpu": "4 cores"}}}, "at '/resources"),
    # Typos in Kubernetes objects would be dropped by the API server, or refused late.
    "a misspelt pod security field": (
        {"podSecurityContext": {"runAsNonroot": True}},
        "at '/podSecurityContext': additional properties 'runAsNonroot' not allowed",
    ),
    "a misspelt container security field": (
        {"securityContext": {"readOnlyRootFS": True}},
        "at '/securityContext': additional properties 'readOnlyRootFS' not allowed",
    ),
    "a misspelt capabilities field": (
        {"securityContext": {"capabilities": {"dorp": ["ALL"]}}},
        "at '/securityContext/capabilities': additional properties 'dorp' not allowed",
    ),
    "a misspelt seccomp field": (
        {"podSecurityContext": {"seccompProfile": {"typ": "RuntimeDefault"}}},
        "at '/podSecurityContext/seccompProfile'",
    ),
    "a bad fsGroupChangePolicy": (
        {"podSecurityContext": {"fsGroupChangePolicy": "Sometimes"}},
        "at '/podSecurityContext/fsGroupChangePolicy'",
    ),
    "a misspelt toleration field": (
        {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "efect": "NoSchedule"}]},
        "at '/tolerations/0': additional properties 'efect' not allowed",
    ),
    "a bad toleration operator": (
        {"tolerations": [{"key": "nvidia.com/gpu", "operator": "exists"}]},
        "at '/tolerations/0/operator'",
    ),
    "a bad pull policy": ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy'"),
    "W&B without its Secret": ({"wandb": {"enabled": True}}, "at '/wandb/existingSecret'"),
    "a bad Kueue queue name": ({"kueue": {"queueName": "GPU queue"}}, "at '/kueue/queueName'"),
    "a misspelt Kueue key": (
        {"kueue": {"queue": "gpu-queue"}},
        "at '/kueue': additional properties 'queue' not allowed",
    ),
    "a suspend that is not a boolean": ({"suspend": "yes"}, "at '/suspend'"),
    "Job labels that are not strings": ({"jobLabels": {"team": 1}}, "at '/jobLabels/team'"),
    "a Job label value Kubernetes refuses": (
        {"jobLabels": {"team": "vision team"}},
        "at '/jobLabels/team'",
    ),
    "a bad scheduler name": ({"schedulerName": "Volcano Scheduler"}, "at '/schedulerName'"),
    "a spread constraint without its topology key": (
        {"topologySpreadConstraints": [{"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}]},
        "at '/topologySpreadConstraints/0': missing property 'topologyKey'",
    ),
    "a misspelt spread constraint field": (
        {
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "k",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelecter": {},
                }
            ]
        },
        "additional properties 'labelSelecter' not allowed",
    ),
    "a misspelt mount field": (
        {"extraVolumeMounts": [{"name": "x", "mountPath": "/x", "readonly": True}]},
        "at '/extraVolumeMounts/0': additional properties 'readonly' not allowed",
    ),
    "an extra volume without a name": (
        {"extraVolumes": [{"emptyDir": {}}]},
        "at '/extraVolumes/0': missing property 'name'",
    ),
    "a relative extra mount path": (
        {"extraVolumeMounts": [{"name": "x", "mountPath": "data"}]},
        "at '/extraVolumeMounts/0/mountPath'",
    ),
    "an init container named like inat's": (
        {"initContainers": [{"name": "inat", "image": "busybox"}]},
        "at '/initContainers/0/name'",
    ),
    "an init container without an image": (
        {"initContainers": [{"name": "warm"}]},
        "at '/initContainers/0': missing property 'image'",
    ),
    # Literal secrets: no place for keys in values, and every escape route is closed.
    "S3 keys in values": (
        {"credentials": {"existingSecret": "s3", "secretAccessKey": SECRET}},
        "at '/credentials': additional properties 'secretAccessKey' not allowed",
    ),
    "a W&B key in values": (
        {"wandb": {"enabled": True, "apiKey": SECRET}},
        "at '/wandb': additional properties 'apiKey' not allowed",
    ),
    "credentials in the data URL": (
        {"data": {"source": f"https://user:{SECRET}@data.example.com/nature_12K.zip"}},
        "no credentials in URLs",
    ),
    "credentials in an overridden URL": (
        {"overrides": [f"data.source=https://user:{SECRET}@data.example.com/x.zip"]},
        "no credentials in URLs",
    ),
    # A pattern error prints the value: these URLs are refused before their pattern.
    "credentials in output": ({"output": f"s3://KEY:{SECRET}@bucket/runs"}, NO_AT),
    "credentials in an upper-case output": ({"output": f"S3://KEY:{SECRET}@BUCKET"}, NO_AT),
    "a secret key with a slash in output": ({"output": f"s3://KEY:a/{SECRET}@bucket"}, NO_AT),
    "credentials in the S3 endpoint": (
        {"s3": {"endpoint": f"http://user:{SECRET}@minio:9000"}},
        "at '/s3/endpoint': value must be 'no credentials (nor any @) in this URL",
    ),
    "upper-case credentials in the S3 endpoint": (
        {"s3": {"endpoint": f"HTTP://USER:{SECRET}@MINIO:9000"}},
        "at '/s3/endpoint': value must be 'no credentials",
    ),
    "credentials in the W&B URL": (
        {"wandb": {"baseUrl": f"https://user:{SECRET}@wandb.example.com"}},
        "at '/wandb/baseUrl': value must be 'no credentials",
    ),
}

# Literal secrets whose name says so, in any case: refused by the templates (a schema
# pattern cannot ignore case portably), with a message naming the key but not the value.
REFUSED_BY_THE_TEMPLATES = {
    "a secret in extraEnv": (
        {"extraEnv": [{"name": "AWS_SECRET_ACCESS_KEY", "value": SECRET}]},
        "extraEnv[0] (AWS_SECRET_ACCESS_KEY): no literal secrets in extraEnv: use valueFrom",
    ),
    "a lower-case secret in extraEnv": (
        {
            "extraEnv": [
                {"name": "NCCL_DEBUG", "value": "INFO"},
                {"name": "aws_secret_access_key", "value": SECRET},
            ]
        },
        "extraEnv[1] (aws_secret_access_key): no literal secrets in extraEnv",
    ),
    "a W&B key in extraEnv": (
        {"extraEnv": [{"name": "WANDB_API_KEY", "value": SECRET}]},
        "no literal secrets in extraEnv",
    ),
    "a mixed-case token in extraEnv": (
        {"extraEnv": [{"name": "Hf_Token", "value": SECRET}]},
        "extraEnv[0] (Hf_Token): no literal secrets in extraEnv",
    ),
    "a secret in overrides": (
        {"overrides": [f"logger.api_key={SECRET}"]},
        "overrides[0] (logger.api_key=...): no literal secrets in overrides",
    ),
    "an upper-case secret appended in overrides": (
        {"overrides": ["trainer.epochs=3", f"+storage.AWS_SECRET_ACCESS_KEY={SECRET}"]},
        "overrides[1] (+storage.AWS_SECRET_ACCESS_KEY=...): no literal secrets in overrides",
    ),
    "a secret in the job's overrides": (
        {"job": {"name": "x", "overrides": [f"storage.secret_access_key={SECRET}"]}},
        "job.overrides[0] (storage.secret_access_key=...): no literal secrets in overrides",
    ),
    "a mixed-case password in the job's overrides": (
        {"job": {"name": "x", "overrides": [f"db.PassWord={SECRET}"]}},
        "job.overrides[0] (db.PassWord=...): no literal secrets in overrides",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED_BY_THE_TEMPLATES))
def test_literal_secrets_are_refused_in_any_case_without_printing_them(case):
    values, message = REFUSED_BY_THE_TEMPLATES[case]
    done = template(values={"job": {"name": "x"}, **values})
    assert done.returncode != 0
    assert message in done.stderr
    assert SECRET not in done.stderr + done.stdout
    assert SECRET.lower() not in (done.stderr + done.stdout).lower()


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_values_are_refused_by_the_schema(case):
    values, message = REFUSED[case]
    done = template(values={"job": {"name": "x"}, **values})
    assert done.returncode != 0
    assert "don't meet the specifications of the schema" in done.stderr
    assert message in done.stderr
    assert SECRET not in done.stderr + done.stdout
    assert SECRET.lower() not in (done.stderr + done.stdout).lower()


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
                {"name": "hf_token", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "t"}}},
            ],
            "s3": {"endpoint": "http://minio.minio:9000"},
            "data": {"source": "https://data.example.com/nature_12K.zip"},
            "overrides": ["data.source=s3://bucket/data/nature_12K.zip", "~logger.api_key"],
        }
    )
    assert done.returncode == 0, done.stderr


def test_gpu_requests_must_equal_limits():
    done = template(
        values={
            "job": {"name": "x"},
            "resources": {"requests": {"nvidia.com/gpu": 2}, "limits": {"nvidia.com/gpu": 1}},
        }
    )
    assert done.returncode != 0
    assert "requests.nvidia.com/gpu (2) and limits.nvidia.com/gpu (1) must be equal" in (
        done.stderr
    )


# The chart's schema of each Kubernetes object in values, and its Kubernetes definition.
KUBERNETES_OBJECTS = {
    ("podSecurityContext",): "PodSecurityContext",
    ("securityContext",): "SecurityContext",
    ("toleration",): "Toleration",
    ("securityContext", "capabilities"): "Capabilities",
    ("seccompProfile",): "SeccompProfile",
    ("appArmorProfile",): "AppArmorProfile",
    ("seLinuxOptions",): "SELinuxOptions",
    ("windowsOptions",): "WindowsSecurityContextOptions",
    ("podSecurityContext", "sysctls", "items"): "Sysctl",
    ("topologySpreadConstraint",): "TopologySpreadConstraint",
    ("volumeMount",): "VolumeMount",
}


def _kubernetes_fields(version: str, name: str) -> set[str]:
    """The fields of core/v1 `name` in this version; none where it has no such object."""
    folder = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    schema = json.loads((folder / f"v{version}-local-strict" / "_definitions.json").read_text())
    return set(schema["$defs"].get(f"io.k8s.api.core.v1.{name}", {"properties": {}})["properties"])


@pytest.mark.parametrize("path", list(KUBERNETES_OBJECTS), ids=".".join)
def test_kubernetes_objects_in_values_have_exactly_their_fields(path):
    definition = SCHEMA["definitions"][path[0]]
    for step in path[1:]:
        definition = definition[step] if step == "items" else definition["properties"][step]
    assert definition["additionalProperties"] is False
    fields = set(definition["properties"])
    name = KUBERNETES_OBJECTS[path]
    # The newest version's fields, which include every older supported version's.
    assert fields == _kubernetes_fields(KUBERNETES_VERSIONS[-1], name)
    for version in KUBERNETES_VERSIONS:
        assert _kubernetes_fields(version, name) <= fields, version


@pytest.mark.parametrize(
    "resources_",
    [
        {"requests": {"cpu": 0.5, "memory": "1.5Gi", "ephemeral-storage": 1e9}},
        {"requests": {"cpu": "500m", "memory": 17179869184, "hugepages-2Mi": "1Gi"}},
        {"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": 2}},
    ],
)
def test_valid_quantities_are_accepted(resources_):
    done = template(values={"job": {"name": "x"}, "resources": resources_})
    assert done.returncode == 0, done.stderr


def _with_examples(node, path=""):
    """(JSON pointer, subschema) of every subschema in the values schema with `examples`."""
    if isinstance(node, dict):
        if "examples" in node:
            yield path, node
        for key, value in node.items():
            if key != "examples":
                yield from _with_examples(value, f"{path}/{key}")
    elif isinstance(node, list):
        for number, value in enumerate(node):
            yield from _with_examples(value, f"{path}/{number}")


EXAMPLES = [
    (path, example) for path, node in _with_examples(SCHEMA) for example in node["examples"]
]


def test_the_schema_gives_examples():
    paths = {path for path, _ in EXAMPLES}
    assert {"/properties/output", "/properties/global/properties/imageRegistry"} <= paths


@pytest.mark.parametrize(("path", "example"), EXAMPLES, ids=[f"{p}={e}" for p, e in EXAMPLES])
def test_every_example_is_valid_for_its_own_schema(path, example):
    node = SCHEMA
    for step in path.strip("/").split("/"):
        node = node[int(step)] if isinstance(node, list) else node[step]
    # Refs (#/definitions/...) resolve in the whole schema.
    schema = {"$schema": SCHEMA["$schema"], "definitions": SCHEMA["definitions"], **node}
    jsonschema.Draft7Validator(schema).validate(example)


def test_the_example_output_of_the_required_message_is_accepted():
    done = template(values={"job": {"name": "x"}, "output": ""})
    example = re.search(r"--set output=(\S+)", done.stderr).group(1)
    assert template(values={"job": {"name": "x"}, "output": example}).returncode == 0


def _properties(node, path=""):
    """(path, schema) of every named property in the values schema and its definitions."""
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            yield f"{path}/{name}", sub
        for key, sub in node.items():
            yield from _properties(sub, f"{path}/{key}")
    elif isinstance(node, list):
        for number, sub in enumerate(node):
            yield from _properties(sub, f"{path}/{number}")


OPEN = r"^/global$|/(extraVolumes|initContainers|imagePullSecrets)/items/"


def test_every_value_is_described_and_closed():
    for path, sub in _properties(SCHEMA):
        if re.search(r"/(if|then|else)/", path):
            continue  # a condition on a value, not a value
        target = sub
        if "$ref" in sub:
            target = SCHEMA["definitions"][sub["$ref"].rsplit("/", 1)[1]]
        assert "description" in sub or "description" in target, path
        # Objects with known fields refuse others; open are `global` (other charts' too),
        # and Volume, Container and pull-Secret items (Kubernetes checks them).
        if "properties" in target and not re.search(OPEN, path):
            assert target.get("additionalProperties") is False, path


def test_every_top_level_value_has_a_comment_in_values_yaml():
    lines = (CHART / "values.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        key = re.match(r"^([A-Za-z][\w]*):", line)
        if key:
            before = [text for text in lines[:number] if text.strip()][-1]
            assert before.startswith("#"), f"values.yaml:{number + 1}: {key.group(1)}"
    assert set(yaml.safe_load((CHART / "values.yaml").read_text())) == set(SCHEMA["properties"])


def _find(node, key: str):
    """The first value of `key` below `node`, depth first."""
    if isinstance(node, dict):
        if key in node:
            return node[key]
        children = node.values()
    else:
        children = node if isinstance(node, list) else []
    for child in children:
        found = _find(child, key)
        if found is not None:
            return found
    return None


def test_a_sweep_metric_is_a_column_inat_records():
    metric = _find(SCHEMA, "metric")
    assert metric["properties"]["name"]["enum"] == list(EPOCH_METRICS)
