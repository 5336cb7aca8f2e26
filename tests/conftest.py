"""Shared fixtures: small synthetic DEAP datasets written by the project's own generator."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# Prefect keeps state in PREFECT_HOME: tests never touch the user's ~/.prefect. Set before any
# test module imports prefect. One folder per test process: this file runs twice in a process
# (pytest loads it as `conftest`, test modules import `tests.conftest`), and a second folder set
# after Prefect has read the first would hide the temporary API's database from the tests that
# read it (tests/test_secrets.py failed after tests/test_preprocess_flow.py). The pid keeps
# pytest-xdist workers, which inherit the controller's environment, apart.
if os.environ.get("MILMER_TESTS_PREFECT_HOME_PID") != str(os.getpid()):
    os.environ["MILMER_TESTS_PREFECT_HOME_PID"] = str(os.getpid())
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="milmer-prefect-home-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
os.environ.pop("PREFECT_API_URL", None)
# Threads that wait for work sleep instead of spinning (torch's OpenMP), and numpy/scipy's
# OpenBLAS runs on the calling thread: the tests' matrices are small (32 channels x seconds), and
# on a busy 2-core machine spinning or contended BLAS threads cost 2-3x the CPU and wall time
# (measured: FastICA of a small subject 4.9 -> 1.8 CPU s, 40 Swin-tiny frames 9 -> 3.3 CPU s;
# same bytes out). Set before torch loads; subprocesses (CLI runs, servers, Dask workers) inherit
# it. numpy is loaded already (zarr's pytest plugin imports it): its OpenBLAS is limited here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

threadpool_limits(limits=int(os.environ["OPENBLAS_NUM_THREADS"]), user_api="blas")


# Forked children (DataLoader workers, test_concurrency's fork test) exit cleanly even after a
# test ran a flow in this process: importing flows registers flows.fork_safety.
import flows  # noqa: E402,F401

from pipeline.synth import SynthParams, write_synthetic_deap

SMALL = SynthParams(subjects=2, trials=4, seconds=4, seed=0, fps=10.0)
"""The smallest dataset that still has two subjects, several trials and real videos."""

NARROW_HEADS = {"d_model": 64, "fusion_heads": 4, "balance_heads": 4, "fusion_ff": 128,
                "n_queries": 8, "mil_hidden": 32, "mlp_hidden": 128, "concat_hidden": 64}
"""ModelConfig fields of narrow heads for CPU tests (train, study); every other field is the
paper's."""


def ica_solution(n_components: int) -> dict[str, np.ndarray]:
    """The eeg stage's ICA arrays for ``n_components`` components, zero (store and runner tests
    that write an eeg subject-stage by hand)."""
    return {"ica_flagged": np.zeros((2, n_components), bool),
            "ica_mixing": np.zeros((32, n_components)), "ica_unmixing": np.zeros((n_components, 32)),
            "ica_channel_mean": np.zeros(32),
            "ica_label_probabilities": np.full((n_components, 7), np.nan, "f4")}


@pytest.fixture(scope="session")
def small_deap_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deap-master") / "DEAP"
    write_synthetic_deap(out=out, params=SMALL)
    return out


@pytest.fixture()
def small_deap(small_deap_master: Path, tmp_path: Path) -> Path:
    """A private copy of the small dataset, free to corrupt."""
    return private_copy(small_deap_master, tmp_path)


def private_copy(master: Path, tmp_path: Path) -> Path:
    """``master`` (a dataset shared by a module or session) copied to ``tmp_path/DEAP``."""
    copy = tmp_path / "DEAP"
    shutil.copytree(master, copy)
    return copy


@pytest.fixture(scope="session", autouse=True)
def _stop_prefect_temporary_servers():  # noqa: ANN202
    """Stop Prefect's temporary API while pytest still captures output.

    Prefect stops it at interpreter exit otherwise, logging to a stream pytest has already closed.
    """
    yield
    import sys

    if "prefect.server.api.server" in sys.modules:
        from prefect.server.api.server import SubprocessASGIServer

        for server in list(SubprocessASGIServer._instances.values()):
            server.stop()


@pytest.fixture(scope="session")
def tiny_planted_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A planted store (train.synthetic) of 2 subjects x 8 trials x 2 segments, every stage
    committed: for readers of the store (StoreDataset, split manifests, export). Read only."""
    from train.synthetic import write_planted_store

    url = str(tmp_path_factory.mktemp("tiny-planted") / "store.zarr")
    write_planted_store(url, subjects=2, trials=8, segments_per_trial=2, seed=0)
    return url


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """One real Prefect API (``prefect server start`` on 127.0.0.1) for every test that runs flows
    in other processes: yields (api_url, env with PREFECT_API_URL). Each CLI run or module would
    otherwise start its own server (~10 s of CPU each)."""
    from tests.servers import prefect_server

    with prefect_server(tmp_path_factory.mktemp("prefect-api")) as (url, env):
        yield url, env



@pytest.fixture
def one_torch_thread():  # noqa: ANN201
    """torch on one thread for the test (small models train faster without the threads' overhead;
    modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
