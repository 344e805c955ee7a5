"""The run directory: one layout on local disk and on S3, written by the trainer, read by results.

<run>/config.yaml        resolved config, secrets redacted
<run>/metrics.jsonl      one JSON object per finished epoch
<run>/result.json        status (running|done|failed|interrupted), metrics, timings, versions
<run>/checkpoints/       step-NNNNNNN/state.pt folders + latest.json and best.json pointers
"""

from __future__ import annotations

import json
import re
from typing import Any

from inat.storage import Storage

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
RESULT = "result.json"
CHECKPOINTS = "checkpoints"

_SECRET_KEY = re.compile(r"(secret|password|passwd|token|api_?key|access_?key|credential)", re.I)
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s:]+:[^/@\s]+@")
REDACTED = "***"


def redact(obj: Any) -> Any:
    """A copy of `obj` with secret-looking values replaced, for config dumps and trackers.

    Values under keys that name a secret are replaced, and so are passwords
    embedded in URLs (https://user:password@host).
    """
    if isinstance(obj, dict):
        return {
            k: REDACTED if _SECRET_KEY.search(str(k)) and v is not None else redact(v)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return _URL_CREDENTIALS.sub(f"{REDACTED}@", obj)
    return obj


def redact_overrides(args: list[str]) -> list[str]:
    """Command-line arguments with the values of secret-looking `key=value` overrides hidden."""
    return [
        f"{arg.split('=', 1)[0]}={REDACTED}"
        if "=" in arg and _SECRET_KEY.search(arg.split("=", 1)[0])
        else redact(arg)
        for arg in args
    ]


def write_metrics(storage: Storage, history: list[dict[str, Any]]) -> None:
    """Rewrite metrics.jsonl from the whole history (object stores cannot append)."""
    storage.write_text(METRICS, "".join(json.dumps(row) + "\n" for row in history))
