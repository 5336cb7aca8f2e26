"""Secrets never become parameters: credential-looking storage options are refused in one line
wherever a run's parameters come from, and a secret planted in the environment (where
credentials belong) reaches no output: not the store, not a log line, not Prefect's database."""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from store_schema.engine.credentials import credential_problem, redacted

CREDENTIAL_KEYS = ["key", "secret", "token", "password", "AWS_Secret_Access_Key",
                   "aws_access_key_id", "session_token", "accessKey", "account_key", "api_key",
                   "sas_token", "connection_string", "client_secret"]
PLAIN_KEYS = ["profile", "anon", "endpoint_url", "region_name", "signature_version", "SSEKMSKeyId",
              "ServerSideEncryption", "requester_pays", "use_ssl"]


@pytest.mark.parametrize("key", CREDENTIAL_KEYS)
def test_credential_looking_keys_are_refused_at_any_depth(key: str) -> None:
    assert credential_problem({key: "x"}) is not None
    nested = credential_problem({"client_kwargs": {"config": [{key: "x"}]}})
    assert nested is not None and nested.startswith(
        f"storage_options.client_kwargs.config[0].{key} looks like a credential")
    assert redacted({"client_kwargs": {key: "x"}}) == {"client_kwargs": {key: "<redacted>"}}


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_ordinary_fsspec_options_pass(key: str) -> None:
    assert credential_problem({key: "x", "client_kwargs": {key: "x"}}) is None
    assert credential_problem({"token": "anon"}) is None  # gcsfs: a method, not a secret


def test_a_credential_is_refused_in_one_line_from_a_config_file_the_deployment_and_a_url(
    small_deap_master: Path, tmp_path: Path
) -> None:
    from flows.preprocess import preprocess_deap
    from train.config import TrainConfig

    secret = secrets.token_hex(16)
    settings = tmp_path / "s3.json"
    settings.write_text(json.dumps({"storage_options": {"client_kwargs": {
        "endpoint_url": "http://127.0.0.1:9000", "AWS_Secret_Access_Key": secret}}}))
    result = CliRunner().invoke(app, ["preprocess", "--deap", str(small_deap_master), "--store",
                                      "s3://bucket/x.zarr", "--config", str(settings), "--plan"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith(
        "error: storage_options: storage_options.client_kwargs.AWS_Secret_Access_Key looks like a "
        "credential"), result.output
    assert "AWS_SECRET_ACCESS_KEY" in result.output and "~/.aws/credentials" in result.output
    assert secret not in result.output

    # a deployment's parameters meet the same validator when the flow run starts
    with pytest.raises(Exception, match="looks like a credential") as raised:
        preprocess_deap.validate_parameters({"config": {
            "deap": str(small_deap_master), "store": "s3://bucket/x.zarr",
            "storage_options": {"secret": secret}}})
    assert secret not in str(raised.value)

    url = f"s3://user:{secret}@bucket/x.zarr"
    result = CliRunner().invoke(app, ["preprocess", "--deap", str(small_deap_master), "--store",
                                      url, "--plan"])
    assert result.exit_code == 2 and "URL carries a password" in result.output
    assert secret not in result.output
    with pytest.raises(ValueError, match="URL carries a password") as raised:
        TrainConfig(store=url)
    assert secret not in str(raised.value)


def test_a_secret_planted_in_the_environment_reaches_no_output(
    small_deap_master: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import s3fs

    from tests.servers import s3_endpoint

    secret, key_id = secrets.token_hex(20), "AKIA" + secrets.token_hex(8).upper()
    credentials = {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret,
                   "AWS_DEFAULT_REGION": "us-east-1"}
    # every line of the project's and Prefect's loggers, down to debug (notes included);
    # botocore's own debug log prints the signed request, access key id included: not ours
    caplog.set_level(logging.INFO)
    for name in ("flows", "pipeline", "store_schema", "train", "prefect"):
        caplog.set_level(logging.DEBUG, logger=name)
    with s3_endpoint("planted", credentials=credentials) as s3:  # credentials in os.environ
        settings = tmp_path / "s3.json"
        settings.write_text(json.dumps({"storage_options": s3.storage_options()}))
        url = "s3://planted/run.zarr"
        result = CliRunner().invoke(app, [
            "preprocess", "--deap", str(small_deap_master), "--store", url, "--config",
            str(settings), "--stages", "ingest", "--subjects", "1", "--json"])
        fs = s3fs.S3FileSystem(**s3.storage_options(), skip_instance_cache=True)
        objects = {path: fs.cat_file(path) for path in fs.find("planted")}
    assert result.exit_code == 0, result.output[-3000:]
    assert any(path.endswith("s01/ingest/zarr.json") for path in objects)  # the record is there
    captured = capfd.readouterr()
    prefect_db = [p.read_bytes() for p in Path(os.environ["PREFECT_HOME"]).glob("*.db*")]
    assert any(url.encode() in db for db in prefect_db)  # the run's parameters are in there
    outputs = {"CLI output": result.output.encode(), "stdout": captured.out.encode(),
               "stderr": captured.err.encode(), "logs": caplog.text.encode(),
               **{f"store object {p}": data for p, data in objects.items()},
               **{f"Prefect database {i}": db for i, db in enumerate(prefect_db)}}
    for planted in (secret, key_id):
        leaks = [name for name, data in outputs.items() if planted.encode() in data]
        assert leaks == [], f"{planted[:4]}... found in {leaks}"
