"""The command line that trains one point inside an array task."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inat.errors import ConfigError

ENGINES = ("apptainer", "singularity")


@dataclass(frozen=True)
class Container:
    """The container image each point runs in (hydra.launcher.container); no image: the host."""

    image: str | None = None
    engine: str = "apptainer"
    python: str = "python"
    mounts: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Container:
        """The container settings of the launcher config, checked."""
        container = cls(
            image=cfg.get("image") or None,
            engine=cfg.get("engine", "apptainer"),
            python=cfg.get("python", "python"),
            mounts=tuple(cfg.get("mounts") or ()),
        )
        if container.engine not in ENGINES:
            raise ConfigError(
                f"hydra.launcher.container.engine={container.engine!r} is not supported; "
                f"use one of {ENGINES}"
            )
        return container


def processes_per_point(gpus_per_node: int | None) -> int:
    """One training process per GPU of the point, at least one (on the CPU)."""
    return max(1, gpus_per_node or 0)


def point_command(
    job_file: str,
    index: int,
    overrides: Sequence[str],
    processes: int,
    container: Container,
    mounts: Sequence[str] = (),
    selector: str = "--index",
) -> list[str]:
    """`python -m inat sweep --index I JOB OVERRIDES...` for point `index` (with `selector`
    `--task`: the workers of task `index` of an adaptive sweep).

    More than one process runs under `inat launch` (DDP on one node, on a free port);
    with a container image, everything runs in `ENGINE exec --nv`, with `mounts` (the working
    folder, the logs) and the container's own mounts bound at the same paths.
    """
    python = container.python if container.image else sys.executable
    if processes > 1:
        launch = [
            *(python, "-m", "inat", "launch", "--multi_gpu"),
            *("--num_processes", str(processes), "--main_process_port", "0"),
        ]
    else:
        launch = [python, "-m", "inat"]
    command = [*launch, "sweep", selector, str(index), job_file, *overrides]
    if not container.image:
        return command
    binds = ",".join(dict.fromkeys([*mounts, *container.mounts]))
    return [container.engine, "exec", "--nv", "--bind", binds, container.image, *command]
