"""Project errors for boto3/botocore errors, each naming the location, the likely cause and the fix.

Messages are built from the location, the endpoint and S3's error code, never
from the request, so they cannot carry a secret key or session token.
"""

from __future__ import annotations

import errno

from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from inat.errors import StorageError, TransientError

_UNREACHABLE = (BotoConnectionError, HTTPClientError, IncompleteReadError, RetriesExceededError)
_NO_CREDENTIALS = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    TokenRetrievalError,
)
_MISSING_KEY = {"NoSuchKey", "NotFound", "404"}
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
}
_DENIED = {"AccessDenied", "Forbidden", "AllAccessDisabled", "AccountProblem"}
_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout"}
_PERMISSION = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "ListObjectsV2": "s3:ListBucket",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
    "DeleteObjects": "s3:DeleteObject",
}


class PreconditionFailed(Exception):
    """A conditional write was refused: 412 (the key exists) or 409 (a racing write)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def translate(error: Exception, uri: str, bucket: str, endpoint: str) -> Exception:
    """The exception to raise for `error`, met while accessing `uri` on the server at `endpoint`."""
    if isinstance(error, S3UploadFailedError) and isinstance(error.__context__, ClientError):
        error = error.__context__  # boto3 flattens the S3 error into a string; use the original
    if isinstance(error, ClientError):
        return _client_error(error, uri, bucket, endpoint)
    if isinstance(error, _NO_CREDENTIALS):
        return StorageError(
            f"no usable AWS credentials for {uri} ({error}). Set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, choose a profile with AWS_PROFILE, or run with a web identity "
            "(IRSA) or instance role."
        )
    if isinstance(error, _UNREACHABLE):
        return TransientError(
            f"cannot reach S3 at {endpoint} for {uri}, even after retrying ({error}). Check that "
            "storage.endpoint_url / AWS_ENDPOINT_URL names the right server and that it is up and "
            "reachable from here; the run exits with RETRY so it can be run again."
        )
    return StorageError(f"S3 request for {uri} failed: {error}. Check the URI and the settings.")


def _client_error(error: ClientError, uri: str, bucket: str, endpoint: str) -> Exception:
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    operation = error.operation_name
    if status in (409, 412) and code in ("PreconditionFailed", "ConditionalRequestConflict"):
        return PreconditionFailed(status)
    if code == "NoSuchBucket":
        return StorageError(
            f"bucket {bucket!r} does not exist at {endpoint} (accessing {uri}). Create it, fix "
            "the bucket name, or point storage.endpoint_url / AWS_ENDPOINT_URL at the server "
            "that has it."
        )
    if code in _MISSING_KEY:
        return FileNotFoundError(errno.ENOENT, "no such S3 object", uri)
    if code in _BAD_CREDENTIALS:
        return StorageError(
            f"S3 at {endpoint} rejected the credentials for {uri} ({code}: unknown access key id, "
            "wrong secret key or expired session token). Check AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN or the AWS_PROFILE in use, and that they "
            "belong to this endpoint."
        )
    if code in _DENIED or status == 403:
        permission = _PERMISSION.get(operation, f"the permission for {operation}")
        # A HEAD response has no body, hence no error code to tell the two causes apart.
        maybe_credentials = (
            ", or the credentials were rejected" if operation == "HeadObject" else ""
        )
        return StorageError(
            f"access denied to {uri} ({operation}: the credentials in use lack {permission} "
            f"on bucket {bucket!r}{maybe_credentials}). Grant it to them, or use credentials "
            "that have it."
        )
    if status >= 500 or code in _THROTTLED:
        return TransientError(
            f"S3 at {endpoint} kept failing {operation} on {uri} ({code or status}) after "
            "retrying: the store is overloaded or failing. Try again later."
        )
    message = error.response.get("Error", {}).get("Message", "")
    return StorageError(f"S3 refused {operation} on {uri}: {code} {message}".rstrip() + ".")
