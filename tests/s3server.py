"""A real S3 server for tests: `moto_server` in a subprocess on a local port.

moto keeps its state in memory and has no persistence option (moto 5.2), so a
restarted server starts empty: buckets and objects are gone. By default it
accepts any credentials; `enforce_auth()` makes it check them against its own IAM.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
# moto's own server app, run by werkzeug in one thread: requests are handled one at a time.
# moto checks a conditional write's precondition and then writes, with no lock between the
# two steps; served one at a time, the check-and-write is atomic as on a real S3 store.
SERIAL_SERVER = """
import sys
from werkzeug.serving import run_simple
from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
run_simple(sys.argv[1], int(sys.argv[2]), DomainDispatcherApplication(create_backend_app),
           threaded=False, request_handler=MotoRequestHandler)
"""

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "FAKE-secret-key-7c1e-MUST-NOT-LEAK",
    "AWS_SESSION_TOKEN": "FAKE-session-token-94bd-MUST-NOT-LEAK",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """moto_server on 127.0.0.1; `stop()` then `start()` serves again on the same port."""

    def __init__(
        self, port: int | None = None, env: Mapping[str, str] | None = None, serial: bool = False
    ) -> None:
        """A server on `port` (default: a free one); `env` adds moto settings such as
        MOTO_S3_DEFAULT_MAX_KEYS to the server's environment; `serial` serves one request
        at a time (see SERIAL_SERVER)."""
        self.port = port or free_port()
        self.serial = serial
        self.env = {**os.environ, **(env or {})}
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        # moto logs every request: a pipe nobody reads would fill up and stall it.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (open as long as the server object)

    def start(self, timeout: float = 30) -> None:
        """Start the server and return once it answers HTTP requests."""
        if self.serial:
            command = [sys.executable, "-c", SERIAL_SERVER, "127.0.0.1", str(self.port)]
        else:
            command = [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)]
        self._process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                self._log.seek(0)
                output = self._log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"moto_server did not start on port {self.port}:\n{output}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server; it forgets every bucket."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def job_env(self, scratch: Path) -> dict[str, str]:
        """The AWS_* environment of a job that uses this server: fake credentials, nothing else.

        AWS config files (named below `scratch`, which holds none) and instance metadata are
        turned off, so a developer's own AWS setup never leaks in.
        """
        return {
            **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_CONFIG_FILE": str(scratch / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(scratch / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def enforce_auth(self) -> None:
        """From now on, reject requests not signed with a key of the server's IAM users."""
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset-auth",
            data=b"0",  # the number of requests still served without checking credentials
            headers={"Content-Type": "text/plain"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=5).close()

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.endpoint_url}/moto-api/data.json", timeout=1).close()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return True

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
