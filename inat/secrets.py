"""Secrets never reach what people and other tools read: config dumps, logs, trackers.

Values under keys that name a secret are hidden, and so are the credentials of URLs
(https://user:password@host/...) and the secret-looking parameters of their queries (a
presigned URL's X-Amz-Signature, ?token=...), wherever a URL is turned into text.
"""

from __future__ import annotations

import re
from typing import Any

_SECRET_KEY = re.compile(
    r"(secret|password|passwd|token|api_?key|access_?key|credential|signature)", re.I
)
# The userinfo of a URL: user:password@, or a token given as the user name.
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
# A query parameter of a URL: ?name=value or &name=value.
_QUERY_PARAMETER = re.compile(r"(?<=[?&])([^=&#\s]+)=([^&#\s]*)")
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
        text = _URL_CREDENTIALS.sub(f"{REDACTED}@", obj)
        if "://" in text:
            text = _QUERY_PARAMETER.sub(_redact_parameter, text)
        return text
    return obj


def _redact_parameter(match: re.Match[str]) -> str:
    name = match[1]
    return f"{name}={REDACTED}" if _SECRET_KEY.search(name) else match[0]


def redact_overrides(args: list[str]) -> list[str]:
    """Command-line arguments with the values of secret-looking `key=value` overrides hidden."""
    return [
        f"{arg.split('=', 1)[0]}={REDACTED}"
        if "=" in arg and _SECRET_KEY.search(arg.split("=", 1)[0])
        else redact(arg)
        for arg in args
    ]
