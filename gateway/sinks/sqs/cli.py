"""`edgeloop sqs …`: look at the running gateway's queues through its AWS-compatible API."""

from __future__ import annotations

import json
from typing import Any

import click

from gateway.awsapi.client import AwsClient

JSON_1_0 = "application/x-amz-json-1.0"


def _call(obj: Any, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    client = AwsClient.for_config(obj.config)
    return client.json("sqs", f"AmazonSQS.{operation}", body, content_type=JSON_1_0)


def _queue_url(obj: Any, queue: str) -> str:
    if "://" in queue:
        return queue
    return str(_call(obj, "GetQueueUrl", {"QueueName": queue})["QueueUrl"])


def _print_messages(messages: list[dict[str, Any]]) -> None:
    for m in messages:
        line = {"MessageId": m["MessageId"], "Body": m["Body"], "Attributes": m.get("Attributes", {})}
        if m.get("MessageAttributes"):
            line["MessageAttributes"] = m["MessageAttributes"]
        click.echo(json.dumps(line, ensure_ascii=False))


@click.group()
def sqs() -> None:
    """Emulated SQS queues of the running gateway."""


@sqs.command("ls")
@click.option("--prefix", default="", help="Only queues whose name starts with this.")
@click.pass_obj
def list_queues(obj: Any, prefix: str) -> None:
    """List queues with their message counts."""
    body = {"QueueNamePrefix": prefix} if prefix else {}
    urls = _call(obj, "ListQueues", body).get("QueueUrls", [])
    click.echo(f"{'QUEUE':<40} {'VISIBLE':>8} {'IN FLIGHT':>9} {'DELAYED':>8}  TYPE")
    for url in urls:
        attributes = _call(obj, "GetQueueAttributes", {"QueueUrl": url, "AttributeNames": ["All"]})["Attributes"]
        kind = "fifo" if attributes.get("FifoQueue") == "true" else "standard"
        click.echo(f"{url.rsplit('/', 1)[-1]:<40} {attributes['ApproximateNumberOfMessages']:>8} "
                   f"{attributes['ApproximateNumberOfMessagesNotVisible']:>9} "
                   f"{attributes['ApproximateNumberOfMessagesDelayed']:>8}  {kind}")


@sqs.command()
@click.argument("queue")
@click.option("--max", "max_messages", type=click.IntRange(1, 10), default=10, show_default=True)
@click.pass_obj
def peek(obj: Any, queue: str, max_messages: int) -> None:
    """Show messages without hiding them (received with visibility timeout 0; receive counts still go up)."""
    result = _call(obj, "ReceiveMessage", {"QueueUrl": _queue_url(obj, queue), "MaxNumberOfMessages": max_messages,
                                           "VisibilityTimeout": 0, "MessageSystemAttributeNames": ["All"],
                                           "MessageAttributeNames": ["All"]})
    _print_messages(result.get("Messages", []))


@sqs.command()
@click.argument("queue")
@click.option("--max", "max_messages", type=click.IntRange(1, 10), default=1, show_default=True)
@click.option("--wait", type=click.IntRange(0, 20), default=0, show_default=True, help="Long-poll seconds.")
@click.option("--delete", is_flag=True, help="Delete the messages after printing them.")
@click.pass_obj
def receive(obj: Any, queue: str, max_messages: int, wait: int, delete: bool) -> None:
    """Receive messages (they stay hidden for the queue's visibility timeout unless --delete)."""
    url = _queue_url(obj, queue)
    messages = _call(obj, "ReceiveMessage", {"QueueUrl": url, "MaxNumberOfMessages": max_messages,
                                             "WaitTimeSeconds": wait, "MessageSystemAttributeNames": ["All"],
                                             "MessageAttributeNames": ["All"]}).get("Messages", [])
    _print_messages(messages)
    if delete and messages:
        _call(obj, "DeleteMessageBatch", {"QueueUrl": url, "Entries": [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]})


@sqs.command()
@click.argument("queue")
@click.argument("body")
@click.option("--group", "group_id", help="MessageGroupId (FIFO queues).")
@click.option("--dedup", "dedup_id", help="MessageDeduplicationId (FIFO queues).")
@click.pass_obj
def send(obj: Any, queue: str, body: str, group_id: str | None, dedup_id: str | None) -> None:
    """Send one message."""
    request: dict[str, Any] = {"QueueUrl": _queue_url(obj, queue), "MessageBody": body}
    if group_id:
        request["MessageGroupId"] = group_id
    if dedup_id:
        request["MessageDeduplicationId"] = dedup_id
    click.echo(_call(obj, "SendMessage", request)["MessageId"])
