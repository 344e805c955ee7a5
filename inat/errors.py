"""Errors that end a run, and the exit code each one maps to.

The exit codes are a contract shared by the trainer, the Slurm requeue logic and
the Helm chart's podFailurePolicy; this is the one place they are defined.

| code | name        | meaning                                                        | retry? |
|------|-------------|----------------------------------------------------------------|--------|
| 0    | OK          | the run (or every point of a sweep) finished                    | -      |
| 1    | FAILURE     | an unexpected error (a bug, an unreadable state)                | maybe  |
| 65   | BAD_INPUT   | bad config or bad data: the same input fails again              | never  |
| 75   | RETRY       | interrupted after a checkpoint, or storage/network unreachable  | yes    |
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of every inat command."""

    OK = 0
    FAILURE = 1
    BAD_INPUT = 65  # sysexits EX_DATAERR
    RETRY = 75  # sysexits EX_TEMPFAIL


class InatError(Exception):
    """An error with a message for the user and the exit code it ends the process with."""

    exit_code: ExitCode = ExitCode.FAILURE


class ConfigError(InatError):
    """A config value is wrong; the message names the key and what is allowed."""

    exit_code = ExitCode.BAD_INPUT


class DataError(InatError):
    """The data set is missing, malformed or unreadable."""

    exit_code = ExitCode.BAD_INPUT


class StorageError(InatError):
    """A storage location cannot be used as asked (no such bucket, access denied, ...)."""

    exit_code = ExitCode.BAD_INPUT


class TransientError(InatError):
    """Infrastructure failed in a way that a later attempt may not (retries exhausted)."""

    exit_code = ExitCode.RETRY


class Interrupted(InatError):
    """A signal asked the run to stop; its latest checkpoint is published."""

    exit_code = ExitCode.RETRY
