"""`edgeloop sinks ls`: every stream, queue, bucket and delivery stream of the running gateway, via its API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from gateway.awsapi.client import AwsClient
from gateway.awsapi.errors import AwsError


def _kinesis(client: AwsClient) -> list[str]:
    names: list[str] = []
    body: dict[str, Any] = {}
    while True:
        page = client.json("kinesis", "Kinesis_20131202.ListStreams", body)
        names += page.get("StreamNames", [])
        if not page.get("NextToken"):
            return names
        body = {"NextToken": page["NextToken"]}


def _sqs(client: AwsClient) -> list[str]:
    page = client.json("sqs", "AmazonSQS.ListQueues", {"MaxResults": 1000}, "application/x-amz-json-1.0")
    return [url.rsplit("/", 1)[-1] for url in page.get("QueueUrls", [])]


def _s3(client: AwsClient) -> list[str]:
    from gateway.sinks.s3.cli import list_buckets

    return list_buckets(client)


def _firehose(client: AwsClient) -> list[str]:
    names: list[str] = []
    body: dict[str, Any] = {"Limit": 10000}
    while True:
        page = client.json("firehose", "Firehose_20150804.ListDeliveryStreams", body)
        names += page.get("DeliveryStreamNames", [])
        if not page.get("HasMoreDeliveryStreams") or not names:
            return names
        body = {"Limit": 10000, "ExclusiveStartDeliveryStreamName": names[-1]}


KINDS: list[tuple[str, Callable[[AwsClient], list[str]]]] = [
    ("kinesis-stream", _kinesis), ("sqs-queue", _sqs), ("s3-bucket", _s3), ("firehose-stream", _firehose)]


@click.group()
def sinks() -> None:
    """The emulated AWS sinks (Kinesis, SQS, S3, Firehose) of the running gateway."""


@sinks.command("ls")
@click.pass_obj
def ls(app: Any) -> None:
    """List every Kinesis stream, SQS queue, S3 bucket and Firehose delivery stream, one per line."""
    client = AwsClient.for_config(app.config)
    for kind, lister in KINDS:
        try:
            names = lister(client)
        except AwsError as exc:
            if exc.code == "EndpointUnreachable":
                raise
            click.echo(f"{kind}\t(unavailable: {exc.code})")
            continue
        for name in names:
            click.echo(f"{kind}\t{name}")
