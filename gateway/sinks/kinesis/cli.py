"""`edgeloop kinesis ...`: look at the emulated streams of a running gateway through its AWS-compatible API."""

from __future__ import annotations

import base64
import time
from typing import Any

import click

from gateway.awsapi.client import AwsClient

TARGET = "Kinesis_20131202."
POLL_SECS = 1.0  # AWS's advice for a GetRecords loop: about one call per second per shard


def _client(app: Any) -> AwsClient:
    return AwsClient.for_config(app.config)


def _call(client: AwsClient, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    return client.json("kinesis", TARGET + operation, body)


def _show(data: bytes) -> str:
    """Text when the data is printable UTF-8, else base64 (marked with b64:)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "b64:" + base64.b64encode(data).decode()
    return text if text.isprintable() else "b64:" + base64.b64encode(data).decode()


@click.group()
def kinesis() -> None:
    """Emulated Kinesis Data Streams of the running gateway."""


@kinesis.command("ls")
@click.pass_obj
def list_streams(app: Any) -> None:
    """List streams with their mode, open shard count and retention."""
    client = _client(app)
    body: dict[str, Any] = {}
    while True:
        page = _call(client, "ListStreams", body)
        for name in page.get("StreamNames", []):
            summary = _call(client, "DescribeStreamSummary", {"StreamName": name})["StreamDescriptionSummary"]
            click.echo(f"{name}\t{summary['StreamModeDetails']['StreamMode']}\tshards={summary['OpenShardCount']}"
                       f"\tretention={summary['RetentionPeriodHours']}h\tconsumers={summary.get('ConsumerCount', 0)}")
        if not page.get("NextToken"):
            return
        body = {"NextToken": page["NextToken"]}


@kinesis.command("tail")
@click.argument("stream")
@click.option("--from-start", is_flag=True, help="Read from the oldest retained record instead of new ones.")
@click.option("--count", "-n", type=click.IntRange(min=1), default=10, show_default=True,
              help="Stop after this many records.")
@click.pass_obj
def tail(app: Any, stream: str, from_start: bool, count: int) -> None:
    """Print records of STREAM: one line per record (shard, sequence number, partition key, data).

    With --from-start it prints the oldest records and stops when caught up; otherwise it waits
    for new records until --count have arrived (Ctrl-C to stop).
    """
    client = _client(app)
    kind = "TRIM_HORIZON" if from_start else "LATEST"
    iterators: dict[str, str | None] = {}
    for shard in _call(client, "ListShards", {"StreamName": stream})["Shards"]:
        iterators[shard["ShardId"]] = _call(client, "GetShardIterator", {
            "StreamName": stream, "ShardId": shard["ShardId"], "ShardIteratorType": kind})["ShardIterator"]
    shown = 0
    while shown < count and any(iterators.values()):
        caught_up = True
        for shard_id, iterator in iterators.items():
            if iterator is None or shown >= count:
                continue
            page = _call(client, "GetRecords", {"ShardIterator": iterator, "Limit": min(count - shown, 10000)})
            iterators[shard_id] = page.get("NextShardIterator")
            for record in page["Records"]:
                data = base64.b64decode(record["Data"])
                click.echo(f"{shard_id}\t{record['SequenceNumber']}\t{record['PartitionKey']}\t{_show(data)}")
                shown += 1
            caught_up = caught_up and page.get("MillisBehindLatest", 0) == 0 and not page["Records"]
        if caught_up:
            if from_start:
                return
            time.sleep(POLL_SECS)
