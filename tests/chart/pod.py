"""Start the container of a rendered Job (or of the `helm test` Pod) here, as the kubelet
would start it in a pod.

No Kubernetes can run on these machines, so this stands in for the Job controller and
the kubelet, only as far as the chart relies on them, and fails on anything else:
- each volume is a local folder; a configMap volume holds the ConfigMap's files, and
  paths under a mountPath in args, env and workingDir are rewritten into that folder
  (the image's own paths, such as /etc/inat/job.yaml, do not exist here);
- env entries are `value`, `valueFrom.secretKeyRef` (from the test's `secrets`) or
  `valueFrom.fieldRef` on the pod's annotations (where the Job controller puts the
  completion index);
- $(VAR) in command, args and env values is expanded as Kubernetes does; $$ gives $.
The command itself runs for real: `inat` from this Python's bin folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .helm import one

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_ANNOTATION_REF = re.compile(r"^metadata\.annotations\['([^']+)'\]$")


@dataclass(frozen=True)
class Pod:
    """A container ready to start here: its command line, environment and working folder."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path


def expand_refs(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of $(VAR) references: unknown ones stay as they are."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(replace, text)


def pod_spec(manifests: list[dict[str, Any]], kind: str = "Job") -> dict[str, Any]:
    """The spec of the one Job's pods, or of the one Pod (kind="Pod")."""
    manifest = one(manifests, kind)
    return manifest["spec"]["template"]["spec"] if kind == "Job" else manifest["spec"]


def _mounts(manifests: list[dict[str, Any]], spec: dict[str, Any], root: Path) -> dict[str, Path]:
    """mountPath -> the local folder standing for that volume (with a ConfigMap's files)."""
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {}
    for mount in spec["containers"][0]["volumeMounts"]:
        if mount["mountPath"].startswith("/dev/"):
            continue  # /dev/shm: the process uses this machine's own
        folder = root / mount["name"]
        folder.mkdir(parents=True, exist_ok=True)
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            configmap = one(manifests, "ConfigMap")
            assert configmap["metadata"]["name"] == volume["configMap"]["name"]
            for filename, content in configmap["data"].items():
                (folder / filename).write_text(content)
        else:
            assert {"emptyDir", "persistentVolumeClaim"} & set(volume), volume
        mounts[mount["mountPath"]] = folder
    return mounts


def _localize(text: str, mounts: dict[str, Path]) -> str:
    """`text` with paths under a mountPath pointing into its local folder."""
    paths = "|".join(re.escape(path) for path in sorted(mounts, key=len, reverse=True))
    pattern = rf"(?<![\w./-])({paths})(?=/|$)"
    return re.sub(pattern, lambda match: str(mounts[match.group(1)]), text)


def _env(
    entries: list[dict[str, Any]],
    annotations: dict[str, str],
    secrets: dict[str, dict[str, str]],
    mounts: dict[str, Path],
) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in entries:
        name = entry["name"]
        if "value" in entry:
            env[name] = _localize(expand_refs(entry["value"], env), mounts)
            continue
        source = entry["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[name] = secrets[ref["name"]][ref["key"]]
        else:
            field = _ANNOTATION_REF.match(source["fieldRef"]["fieldPath"])
            assert field, f"env {name}: only annotation fieldRefs are emulated: {source}"
            env[name] = annotations[field.group(1)]
    return env


def prepare(
    manifests: list[dict[str, Any]],
    root: Path,
    *,
    kind: str = "Job",
    index: int | None = None,
    secrets: dict[str, dict[str, str]] | None = None,
    base_env: dict[str, str] | None = None,
) -> Pod:
    """The container of the Job (or of the Pod, kind="Pod") as a local process, for
    completion `index` of an Indexed Job.

    `base_env` stands for what the image sets (PATH finds this Python's `inat`); the
    rendered env comes on top of it.
    """
    spec = pod_spec(manifests, kind)
    container = spec["containers"][0]
    mounts = _mounts(manifests, spec, root)
    annotations = {} if index is None else {COMPLETION_INDEX: str(index)}
    bin_dir = str(Path(sys.executable).parent)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **(base_env or {})}
    env.update(_env(container.get("env", []), annotations, secrets or {}, mounts))
    argv = [
        _localize(expand_refs(arg, env), mounts)
        for arg in [*container["command"], *container.get("args", [])]
    ]
    cwd = Path(_localize(container["workingDir"], mounts))
    return Pod(argv=argv, env=env, cwd=cwd)


def run(pod: Pod, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the pod's command to its end and capture its output."""
    return subprocess.run(
        pod.argv, env=pod.env, cwd=pod.cwd, capture_output=True, text=True, timeout=timeout
    )


def start(pod: Pod) -> subprocess.Popen:
    """Start the pod's command; its output (stdout and stderr) is a text pipe."""
    return subprocess.Popen(
        pod.argv,
        env=pod.env,
        cwd=pod.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
