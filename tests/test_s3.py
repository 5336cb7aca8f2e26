"""The feature store on a real S3 protocol endpoint: moto's server on 127.0.0.1, s3fs as the client.

Every stage (random Swin weights) into ``s3://``, a chunk write the endpoint refuses in the middle
of a stage, then ``store info``, ``store verify`` and ``milmer train`` on the URL and a re-run that
skips everything and writes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.config import PreprocessConfig
from flows.preprocess import run_chain_inline
from flows.summary import RunSummary
from store_schema.errors import StoreError
from store_schema.engine.store import FeatureStore
from store_schema.engine.verify import verify_store
from tests.servers import S3Endpoint, s3_endpoint
from tests.conftest import NARROW_HEADS

pytestmark = pytest.mark.slow

BUCKET = "milmer"
ALL_STAGES = ["ingest", "eeg", "segment", "faces", "tokens"]
SMALL_HEADS = NARROW_HEADS


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    with s3_endpoint(BUCKET) as endpoint:
        yield endpoint


def milmer(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("milmer")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def summary_of(stdout: str) -> RunSummary:
    """The --json summary, the last thing printed (MNE may print before it)."""
    return RunSummary.model_validate_json(stdout[stdout.rfind('{\n  "outcomes"'):])


def statuses(summary: RunSummary) -> dict[tuple[int, str], str]:
    return {(o.subject, o.stage.value): o.status for o in summary.outcomes}


def test_the_whole_chain_on_s3_survives_a_refused_chunk_write_and_a_rerun_skips_everything(
    s3: S3Endpoint, small_deap_master: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    prefect_api: tuple[str, dict[str, str]],
) -> None:
    url = f"s3://{BUCKET}/chain.zarr"
    settings = tmp_path / "s3.json"
    settings.write_text(json.dumps({"storage_options": s3.storage_options(), "weights": "random",
                                    "device": "cpu"}))
    args = ["preprocess", "--deap", str(small_deap_master), "--store", url, "--config", str(settings),
            "--json"]
    # the second chunk of s01's band-passed EEG: the stage has written part of its arrays
    s3.refuse(r"/chain\.zarr/subjects/s01/eeg/[^/]+/c/1/", times=1)
    first = milmer(*args, env={**prefect_api[1], **s3.env()})  # the session's Prefect API
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert len(s3.refused) == 1 and "/subjects/s01/eeg/" in s3.refused[0]
    assert "s01 eeg: transient failure, retried" in first.stderr  # failed once, retried by Prefect
    summary = summary_of(first.stdout)
    assert statuses(summary) == {(s, stage): "computed" for s in (1, 2) for stage in ALL_STAGES}

    for name, value in s3.env().items():  # clients given only the URL find the endpoint here
        monkeypatch.setenv(name, value)
    info = CliRunner().invoke(app, ["store", "info", url, "--json"])
    assert info.exit_code == 0, info.output
    rows = json.loads(info.output)["stages"]
    assert {(r["subject"], r["stage"], r["state"]) for r in rows} == {
        (s, stage, "committed") for s in (1, 2) for stage in ALL_STAGES}
    tokens = next(r for r in rows if r["stage"] == "tokens")
    assert tokens["arrays"]["tokens"]["shape"][1:] == [10, 49, 768] and tokens["bytes"] > 0
    verify = CliRunner().invoke(app, ["store", "verify", url])
    assert verify.exit_code == 0 and "ok: 10 committed subject-stages verified" in verify.output, verify.output

    heads = tmp_path / "heads.json"
    heads.write_text(json.dumps({"model": SMALL_HEADS, "run_folds": [0]}))
    train = CliRunner().invoke(app, ["train", "--store", url, "--out", str(tmp_path / "run"),
                                     "--config", str(heads), "--epochs", "1", "--folds", "2",
                                     "--labels", "deap2-arousal", "--device", "cpu", "--no-progress"])
    assert train.exit_code == 0, train.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["model"] == "fusion" and 0.0 <= metrics["accuracy"] <= 1.0

    # the same subject-stages without Prefect (the flow adds nothing to skipping, ~20 s of start-up)
    puts_before = len(s3.puts)
    again = run_chain_inline(PreprocessConfig.model_validate(
        {**json.loads(settings.read_text()), "deap": str(small_deap_master), "store": url}))
    assert statuses(again) == {(s, stage): "skipped" for s in (1, 2) for stage in ALL_STAGES}
    assert s3.puts[puts_before:] == []  # the re-run wrote no object


def test_a_refused_chunk_write_fails_its_stage_as_transient_and_nothing_half_written_shows(
    s3: S3Endpoint, small_deap_master: Path
) -> None:
    url = f"s3://{BUCKET}/fault.zarr"
    config = PreprocessConfig(deap=small_deap_master, store=url, subjects=[1], stages=["ingest", "eeg"],
                              storage_options=s3.storage_options())
    s3.refuse(r"/fault\.zarr/subjects/s01/eeg/[^/]+/c/1/", times=1)
    first = run_chain_inline(config)
    ingest, eeg = first.outcomes
    assert ingest.status == "computed"
    assert eeg.status == "failed" and eeg.transient, eeg
    assert "OSError" in (eeg.error or ""), eeg.error
    store = FeatureStore.open(url, mode="r", storage_options=s3.storage_options())
    assert store.state(1, "eeg") == "uncommitted"  # some arrays are there, no commit record
    assert store.committed_subjects("eeg") == []
    with pytest.raises(StoreError, match="not committed"):
        store.array(1, "eeg", "eeg")
    assert verify_store(store) == []

    again = run_chain_inline(config)
    assert statuses(again) == {(1, "ingest"): "skipped", (1, "eeg"): "computed"}
    assert verify_store(FeatureStore.open(url, mode="r", storage_options=s3.storage_options())) == []
