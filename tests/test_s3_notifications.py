"""S3 event notifications delivered to SQS queues, read back with boto3's SQS client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.awsapi_helpers import ApiHandle, boto3_client
from tests.s3_helpers import api

pytest.importorskip("gateway.sinks.sqs.service")
pytestmark = pytest.mark.interop


@pytest.fixture
def handle(home: Any) -> Iterator[ApiHandle]:
    yield from api(home, with_sqs=True)


def receive(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    for m in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in messages]


def test_notifications_to_sqs(handle: ApiHandle) -> None:
    s3, sqs = boto3_client(handle, "s3"), boto3_client(handle, "sqs")
    url = sqs.create_queue(QueueName="s3-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket="notified")
    rules = [{"Name": "prefix", "Value": "in/"}, {"Name": "suffix", "Value": ".json"}]
    config = {"QueueConfigurations": [
        {"Id": "created", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"], "Filter": {"Key": {"FilterRules": rules}}},
        {"Id": "removed", "QueueArn": arn, "Events": ["s3:ObjectRemoved:*"]}]}
    s3.put_bucket_notification_configuration(Bucket="notified", NotificationConfiguration=config)
    tests = receive(sqs, url)
    assert [t["Event"] for t in tests] == ["s3:TestEvent", "s3:TestEvent"] and tests[0]["Bucket"] == "notified"
    stored = s3.get_bucket_notification_configuration(Bucket="notified")["QueueConfigurations"]
    assert [(q["Id"], q["Events"]) for q in stored] == [("created", ["s3:ObjectCreated:*"]),
                                                       ("removed", ["s3:ObjectRemoved:*"])]
    put = s3.put_object(Bucket="notified", Key="in/a b.json", Body=b"{}")
    s3.put_object(Bucket="notified", Key="in/skip.txt", Body=b"x")
    s3.put_object(Bucket="notified", Key="other/b.json", Body=b"x")
    (event,) = receive(sqs, url)
    record = event["Records"][0]
    assert record["eventSource"] == "aws:s3" and record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"]["name"] == "notified" and record["s3"]["configurationId"] == "created"
    assert record["s3"]["object"]["key"] == "in/a+b.json" and record["s3"]["object"]["size"] == 2
    assert f'"{record["s3"]["object"]["eTag"]}"' == put["ETag"]
    s3.copy_object(Bucket="notified", Key="in/copy.json", CopySource="notified/in/a b.json")
    assert receive(sqs, url)[0]["Records"][0]["eventName"] == "ObjectCreated:Copy"
    s3.delete_object(Bucket="notified", Key="other/b.json")
    assert receive(sqs, url)[0]["Records"][0]["eventName"] == "ObjectRemoved:Delete"
    s3_engine = next(s.engine for s in handle.services if s.signing_name == "s3")
    assert s3_engine.metrics()["s3_notifications_sent"] == 3


def test_unknown_queue_is_rejected(handle: ApiHandle) -> None:
    s3 = boto3_client(handle, "s3")
    s3.create_bucket(Bucket="nowhere")
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_notification_configuration(Bucket="nowhere", NotificationConfiguration={"QueueConfigurations": [
            {"QueueArn": "arn:aws:sqs:us-east-1:000000000000:missing", "Events": ["s3:ObjectCreated:*"]}]})
    assert exc.value.response["Error"]["Code"] == "InvalidArgument"
    assert s3.get_bucket_notification_configuration(Bucket="nowhere").get("QueueConfigurations") is None
