"""Real servers for tests, on loopback only, stopped by the fixture that started them."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, *, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout} s")


@contextmanager
def background(args: list[str], *, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A process in its own session, killed with its children on exit."""
    with log.open("w") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


@contextmanager
def prefect_server(home: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`prefect server start` on 127.0.0.1 with SQLite in ``home``; yields (api_url, env)."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    with background([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                    env=env, log=home / "server.log") as proc:
        url = f"http://127.0.0.1:{port}/api"
        wait_until(lambda: urllib.request.urlopen(f"{url}/health", timeout=2).status == 200,
                   timeout=90, what="prefect server", proc=proc)
        yield url, {**env, "PREFECT_API_URL": url}


@contextmanager
def dask_cluster(
    workdir: Path, env: dict[str, str], *, workers: int = 2, resources: dict[int, str] | None = None,
) -> Iterator[str]:
    """A `dask scheduler` and ``workers`` single-threaded `dask worker` processes on loopback;
    ``resources`` maps a worker's index to its `--resources` (e.g. ``{1: "GPU=1"}``)."""
    with dask_cluster_processes(workdir, env, workers=workers, resources=resources) as (address, _):
        yield address


@contextmanager
def dask_cluster_processes(
    workdir: Path, env: dict[str, str], *, workers: int = 2, resources: dict[int, str] | None = None,
    nanny: bool = True,
) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """:func:`dask_cluster`, yielding the worker processes too (``worker-{i}.log`` is worker i's
    output); ``nanny=False``: each worker is one process, not restarted when it dies."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    with background([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--dashboard-address", "127.0.0.1:0"], env=env,
                    log=workdir / "scheduler.log") as scheduler:
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None,
                   timeout=60, what="dask scheduler", proc=scheduler)
        with _workers(address, env, workdir, workers, resources or {}, nanny) as procs:
            from distributed import Client

            with Client(address, timeout=30) as client:
                client.wait_for_workers(workers, timeout=90)
            yield address, procs


@contextmanager
def _workers(
    address: str, env: dict[str, str], workdir: Path, n: int, resources: dict[int, str], nanny: bool,
) -> Iterator[list[subprocess.Popen]]:
    from contextlib import ExitStack

    with ExitStack() as stack:
        procs = [stack.enter_context(background(
            [str(BIN / "dask"), "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
             "--dashboard-address", "127.0.0.1:0", "--name", f"worker-{i}",
             *(["--resources", resources[i]] if i in resources else []),
             *([] if nanny else ["--no-nanny"])],
            env=env, log=workdir / f"worker-{i}.log")) for i in range(n)]
        yield procs


# -- an S3-compatible endpoint ---------------------------------------------------------------


S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                  "AWS_DEFAULT_REGION": "us-east-1"}

_INTERNAL_ERROR = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
                   b"<Message>injected by the test: chunk write refused</Message></Error>")


class S3Endpoint:
    """moto's S3 server on 127.0.0.1 whose requests a test can count and refuse.

    :meth:`refuse` makes the next PUTs whose path matches a pattern answer ``500 InternalError``
    (the object is not stored), as an overloaded or failing endpoint does.
    """

    def __init__(self, credentials: dict[str, str] | None = None) -> None:
        from moto.server import ThreadedMotoServer

        self.credentials = dict(credentials or S3_CREDENTIALS)

        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""
        self.puts: list[str] = []
        self.refused: list[str] = []
        self._refusing: list[tuple[re.Pattern[str], int]] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        self._moto.start()
        self._moto._server.app = self._faulty(self._moto._server.app)  # noqa: SLF001 - the WSGI app
        host, port = self._moto.get_host_and_port()
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        self._moto.stop()

    def refuse(self, pattern: str, *, times: int = 1) -> None:
        with self._lock:
            self._refusing.append((re.compile(pattern), times))

    def storage_options(self) -> dict:
        """fsspec options naming this endpoint; one attempt per request (no client retries), so
        a refused request reaches the caller. No credentials: those are refused in a run's
        parameters; clients read them from the environment (:meth:`env`, and
        :func:`s3_endpoint` sets them in this process), as they would from a real one."""
        return {"client_kwargs": {"endpoint_url": self.url},
                "config_kwargs": {"retries": {"total_max_attempts": 1, "mode": "standard"}}}

    def env(self) -> dict[str, str]:
        """Environment for clients given only an ``s3://`` URL (``milmer store info``, ``train``)."""
        return {**self.credentials, "AWS_ENDPOINT_URL_S3": self.url}

    def _should_refuse(self, path: str) -> bool:
        with self._lock:
            for i, (pattern, left) in enumerate(self._refusing):
                if left and pattern.search(path):
                    self._refusing[i] = (pattern, left - 1)
                    self.refused.append(path)
                    return True
        return False

    def _faulty(self, app):  # noqa: ANN001, ANN202 - a WSGI app
        def faulty(environ, start_response):  # noqa: ANN001, ANN202
            if environ["REQUEST_METHOD"] == "PUT":
                path = environ.get("PATH_INFO", "")
                with self._lock:
                    self.puts.append(path)
                if self._should_refuse(path):
                    length = int(environ.get("CONTENT_LENGTH") or 0)
                    environ["wsgi.input"].read(length)  # keep the connection's framing intact
                    start_response("500 Internal Server Error",
                                   [("Content-Type", "application/xml"),
                                    ("Content-Length", str(len(_INTERNAL_ERROR)))])
                    return [_INTERNAL_ERROR]
            return app(environ, start_response)
        return faulty


@contextmanager
def s3_endpoint(*buckets: str, credentials: dict[str, str] | None = None) -> Iterator[S3Endpoint]:
    """An :class:`S3Endpoint` with ``buckets`` created, stopped on exit; its credentials are in
    this process's environment meanwhile (AWS_ACCESS_KEY_ID, ...), where s3fs finds them."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    endpoint = S3Endpoint(credentials)
    endpoint.start()
    saved = {name: os.environ.get(name) for name in endpoint.credentials}
    os.environ.update(endpoint.credentials)
    try:
        import s3fs

        fs = s3fs.S3FileSystem(**endpoint.storage_options(), skip_instance_cache=True)
        for bucket in buckets:
            fs.mkdir(bucket)
        yield endpoint
    finally:
        endpoint.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- an MLflow tracking server ----------------------------------------------------------------


@contextmanager
def mlflow_server(home: Path) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1: runs in SQLite (``home/mlflow.db``), artifacts proxied by the
    server into ``home/artifacts``; yields its tracking URI. MLflow's job runner (GenAI jobs, a
    process tree of its own) is switched off: tracking does not use it."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with background([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                     "--workers", "1", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
                     "--artifacts-destination", str(home / "artifacts")],
                    env=env, log=home / "server.log") as proc:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: urllib.request.urlopen(f"{url}/health", timeout=2).status == 200,
                   timeout=120, what="mlflow server", proc=proc)
        yield url
