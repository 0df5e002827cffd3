"""`edgeloop kinesis ls` and `tail` against a running API, with the configured credentials."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from edgeloop.cli import AppContext
from gateway.sinks.kinesis.cli import kinesis
from tests.awsapi_helpers import boto3_client, running_api
from tests.kinesis_helpers import kinesis_services


def test_ls_and_tail(home: Path) -> None:
    with running_api(home, kinesis_services, api__access_key="cli-key", api__secret_key="cli-secret") as api:
        client = boto3_client(api, "kinesis")
        client.create_stream(StreamName="telemetry", ShardCount=2)
        client.put_records(StreamName="telemetry", Records=[
            {"Data": f'{{"t":{i}}}'.encode(), "PartitionKey": f"dev-{i}"} for i in range(6)])
        client.put_record(StreamName="telemetry", Data=b"\xff\x00", PartitionKey="bin")
        app = AppContext(None, {"data_dir": str(home), "api.port": api.api.port,  # type: ignore[union-attr]
                                "api.access_key": "cli-key", "api.secret_key": "cli-secret"})
        runner = CliRunner()
        listed = runner.invoke(kinesis, ["ls"], obj=app)
        assert listed.exit_code == 0, listed.output
        assert listed.output.startswith("telemetry\tPROVISIONED\tshards=2\tretention=24h")
        tailed = runner.invoke(kinesis, ["tail", "telemetry", "--from-start", "--count", "100"], obj=app)
        assert tailed.exit_code == 0, tailed.output
        lines = tailed.output.splitlines()
        assert len(lines) == 7
        assert sorted(line.split("\t")[3] for line in lines if "dev-" in line) == [f'{{"t":{i}}}' for i in range(6)]
        assert any(line.endswith("\tbin\tb64:/wA=") for line in lines)
        limited = runner.invoke(kinesis, ["tail", "telemetry", "--from-start", "-n", "3"], obj=app)
        assert len(limited.output.splitlines()) == 3
        missing = runner.invoke(kinesis, ["tail", "nope", "--from-start"], obj=app)
        assert missing.exit_code != 0 and "ResourceNotFoundException" in str(missing.exception)
