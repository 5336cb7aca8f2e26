"""Real servers for tests, on loopback only, stopped by the fixture that started them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
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
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    with background([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--dashboard-address", "127.0.0.1:0"], env=env,
                    log=workdir / "scheduler.log") as scheduler:
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None,
                   timeout=60, what="dask scheduler", proc=scheduler)
        with _workers(address, env, workdir, workers, resources or {}):
            from distributed import Client

            with Client(address, timeout=30) as client:
                client.wait_for_workers(workers, timeout=90)
            yield address


@contextmanager
def _workers(
    address: str, env: dict[str, str], workdir: Path, n: int, resources: dict[int, str]
) -> Iterator[None]:
    from contextlib import ExitStack

    with ExitStack() as stack:
        for i in range(n):
            stack.enter_context(background(
                [str(BIN / "dask"), "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                 "--dashboard-address", "127.0.0.1:0", "--name", f"worker-{i}",
                 *(["--resources", resources[i]] if i in resources else [])],
                env=env, log=workdir / f"worker-{i}.log"))
        yield
