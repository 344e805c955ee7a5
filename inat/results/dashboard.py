"""`inat results SWEEP --dashboard`: the sweep in optuna-dashboard, on 127.0.0.1.

The study is rebuilt in memory from the sweep's folder (local or S3) as the sweep's own
decisions rebuild it (inat.sweeps.study.build_study): one trial per point, numbered by
the point's index, with its state, its metric after each epoch and its values. No
database is written. The study is read once, when the server starts: restart it to see
points that ended since.
"""

from __future__ import annotations

import signal
from dataclasses import replace
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
import optuna_dashboard

from inat.errors import ConfigError
from inat.results.collect import parse_swept
from inat.rundir import MANIFEST, read_manifest
from inat.storage import Storage, open_storage
from inat.sweeps.claims import read_claims, records
from inat.sweeps.jobs import Point, expand
from inat.sweeps.pruning import read_record
from inat.sweeps.search import Search, parse_search
from inat.sweeps.study import PointRecord, build_study

HOST = "127.0.0.1"


def _drawn_values(search: Search, point: Point) -> dict[str, object]:
    """The values Optuna would have drawn for a grid or random point's swept values."""
    values = parse_swept(point.swept)
    return {key: search.space[key].drawn(value) for key, value in values.items()}


def sweep_records(sweep: Storage, search: Search) -> list[PointRecord]:
    """What every point of the sweep in `sweep` recorded, with its drawn values: an adaptive
    sweep's claims, or the points of a grid or random sweep's job."""
    manifest = read_manifest(sweep)
    if manifest.get("adaptive"):
        return records(sweep, search, read_claims(sweep))
    return [
        replace(read_record(sweep, point, search), params=_drawn_values(search, point))
        for point in expand(manifest["job"])
    ]


def sweep_study(uri: str) -> optuna.Study:
    """The in-memory study of the sweep at `uri` (a sweep folder of a job's sweep block)."""
    sweep = open_storage(uri.rstrip("/"))
    manifest = read_manifest(sweep) if sweep.exists(MANIFEST) else {}
    block = (manifest.get("job") or {}).get("sweep")
    if not block:
        raise ConfigError(
            f"{sweep.uri} is not a sweep of a job file (no {MANIFEST} with a sweep block): "
            "the dashboard shows the points of a sweep run by inat sweep"
        )
    search = parse_search(manifest["name"], block)
    return build_study(search, sweep_records(sweep, search))


class _Server(ThreadingMixIn, WSGIServer):
    """A WSGI server answering the browser's requests side by side."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """No access log on the console: the URL and Ctrl-C are what the user needs."""

    def log_message(self, fmt: str, *args: object) -> None:
        pass


def serve(uri: str, port: int) -> None:
    """Serve the sweep at `uri` in optuna-dashboard on 127.0.0.1:`port` (0: a free port)
    until Ctrl-C; prints its URL once it accepts connections."""
    study = sweep_study(uri)
    app = optuna_dashboard.wsgi(study._storage)
    try:
        server = make_server(HOST, port, app, _Server, _QuietHandler)
    except OSError as e:
        raise ConfigError(
            f"cannot serve on {HOST}:{port} ({e.strerror}): choose another --port (0: a free one)"
        ) from e
    with server:
        url = f"http://{HOST}:{server.server_port}/dashboard/studies/{study._study_id}"
        trials = len(study.trials)
        print(f"{study.study_name} ({trials} points) in optuna-dashboard: {url}", flush=True)
        print("Ctrl-C stops it", flush=True)
        # Ctrl-C ends the serving, as asked (exit 0), not a batch job to retry.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("dashboard stopped")
        finally:
            signal.signal(signal.SIGINT, previous)
