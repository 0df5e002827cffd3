"""SQS over HTTP: unmodified boto3 (awsJson), the aws CLI, and the legacy query/XML protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import botocore.exceptions
import pytest

from edgeloop.config import Config
from gateway.awsapi.client import AwsClient
from gateway.awsapi.errors import AwsError
from gateway.sinks.sqs.service import create_sqs_service
from gateway.storage.durable import GroupSync
from tests.awsapi_helpers import ApiHandle, boto3_client, running_api

pytestmark = pytest.mark.interop
NS = {"q": "http://queue.amazonaws.com/doc/2012-11-05/"}


async def make_services(config: Config, sync: GroupSync) -> list[Any]:
    return [await create_sqs_service(config.home, config, sync, {})]


@pytest.fixture
def api(home: Path) -> Iterator[ApiHandle]:
    with running_api(home, make_services, sqs__purge_cooldown_secs=0.0) as handle:
        yield handle


@pytest.fixture
def sqs(api: ApiHandle) -> Any:
    return boto3_client(api, "sqs")


def test_queue_lifecycle_attributes_tags_and_listing(api: ApiHandle, sqs: Any) -> None:
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    assert dlq == f"{api.endpoint}/000000000000/dlq"
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 4})
    url = sqs.create_queue(QueueName="orders", Attributes={"VisibilityTimeout": "40", "RedrivePolicy": redrive,
                                                           "Policy": '{"Version":"2012-10-17"}',
                                                           "KmsMasterKeyId": "alias/aws/sqs"},
                           tags={"env": "dev"})["QueueUrl"]
    assert sqs.get_queue_url(QueueName="orders")["QueueUrl"] == url
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "40" and attributes["KmsMasterKeyId"] == "alias/aws/sqs"
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 4}
    assert attributes["QueueArn"].endswith(":orders") and int(attributes["CreatedTimestamp"]) > 1_600_000_000
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "3", "RedrivePolicy": ""})
    changed = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["DelaySeconds", "RedrivePolicy"])
    assert changed["Attributes"] == {"DelaySeconds": "3"}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": redrive})
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [url]
    sqs.tag_queue(QueueUrl=url, Tags={"team": "edge"})
    sqs.untag_queue(QueueUrl=url, TagKeys=["env"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "edge"}
    for i in range(3):
        sqs.create_queue(QueueName=f"page-{i}")
    first = sqs.list_queues(QueueNamePrefix="page-", MaxResults=2)
    second = sqs.list_queues(QueueNamePrefix="page-", MaxResults=2, NextToken=first["NextToken"])
    assert [u.rsplit("/", 1)[1] for u in first["QueueUrls"] + second["QueueUrls"]] == ["page-0", "page-1", "page-2"]
    assert "NextToken" not in second
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as err:
        sqs.get_queue_url(QueueName="orders")
    assert err.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert err.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-query-error"] == \
        "AWS.SimpleQueueService.NonExistentQueue;Sender"


def test_messages_end_to_end(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="events")["QueueUrl"]
    sent = sqs.send_message(QueueUrl=url, MessageBody="hello", MessageAttributes={
        "temp": {"DataType": "Number", "StringValue": "21.5"}, "dev": {"DataType": "String", "StringValue": "gw-1"},
        "raw": {"DataType": "Binary.bytes", "BinaryValue": b"\x00\xff"}},
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-abc"}})
    assert sent["MD5OfMessageBody"] == "5d41402abc4b2a76b9719d911017c592"
    batch = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": f"e{i}", "MessageBody": f"b{i}"} for i in range(9)])
    assert len(batch["Successful"]) == 9 and batch["Failed"] == []
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"],
                              MessageAttributeNames=["All"], VisibilityTimeout=60)["Messages"]
    assert len(got) == 10
    first = next(m for m in got if m["MessageId"] == sent["MessageId"])
    assert first["MessageAttributes"]["raw"]["BinaryValue"] == b"\x00\xff"
    assert first["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert first["Attributes"]["AWSTraceHeader"] == "Root=1-abc" and first["Attributes"]["SenderId"] == "test"
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None
    visibility = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "a", "ReceiptHandle": got[0]["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "b", "ReceiptHandle": "bogus", "VisibilityTimeout": 0}])
    assert [s["Id"] for s in visibility["Successful"]] == ["a"]
    assert visibility["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    (again,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert again["MessageId"] == got[0]["MessageId"] and again["ReceiptHandle"] != got[0]["ReceiptHandle"]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=120)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got[1:])])
    assert len(deleted["Successful"]) == 9
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert counts == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    sqs.send_message(QueueUrl=url, MessageBody="to purge")
    sqs.purge_queue(QueueUrl=url)
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None


def test_fifo_over_the_wire(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="jobs.fifo", Attributes={"FifoQueue": "true",
                                                              "ContentBasedDeduplication": "true"})["QueueUrl"]
    results = [sqs.send_message(QueueUrl=url, MessageBody=f"step-{i}", MessageGroupId="dev-1") for i in range(3)]
    duplicate = sqs.send_message(QueueUrl=url, MessageBody="step-0", MessageGroupId="dev-1")
    assert duplicate["MessageId"] == results[0]["MessageId"]
    assert [int(r["SequenceNumber"]) for r in results] == sorted(int(r["SequenceNumber"]) for r in results)
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                              ReceiveRequestAttemptId="attempt-1")["Messages"]
    assert [m["Body"] for m in got] == ["step-0", "step-1", "step-2"]
    retried = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, ReceiveRequestAttemptId="attempt-1")
    assert [m["ReceiptHandle"] for m in retried["Messages"]] == [m["ReceiptHandle"] for m in got]
    assert got[0]["Attributes"]["MessageGroupId"] == "dev-1"
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sqs.send_message(QueueUrl=url, MessageBody="no group")
    assert err.value.response["Error"]["Code"] == "MissingParameter"


@pytest.mark.parametrize(("call", "exception", "status"), [
    (lambda s, u: s.send_message(QueueUrl=u, MessageBody="x" * 1025), "InvalidParameterValue", 400),
    (lambda s, u: s.send_message(QueueUrl=u, MessageBody="\x07"), "InvalidMessageContents", 400),
    (lambda s, u: s.delete_message(QueueUrl=u, ReceiptHandle="nope"), "ReceiptHandleIsInvalid", 400),
    (lambda s, u: s.send_message_batch(QueueUrl=u, Entries=[]), "EmptyBatchRequest", 400),
    (lambda s, u: s.send_message_batch(QueueUrl=u, Entries=[{"Id": str(i), "MessageBody": "m"} for i in range(11)]),
     "TooManyEntriesInBatchRequest", 400),
    (lambda s, u: s.delete_message_batch(QueueUrl=u, Entries=[{"Id": "a", "ReceiptHandle": "r"}] * 2),
     "BatchEntryIdsNotDistinct", 400),
    (lambda s, u: s.send_message_batch(QueueUrl=u, Entries=[{"Id": "no spaces", "MessageBody": "m"}]),
     "InvalidBatchEntryId", 400),
    (lambda s, u: s.get_queue_attributes(QueueUrl=u, AttributeNames=["Nope"]), "InvalidAttributeName", 400),
    (lambda s, u: s.set_queue_attributes(QueueUrl=u, Attributes={"VisibilityTimeout": "-1"}),
     "InvalidAttributeValue", 400),
    (lambda s, u: s.create_queue(QueueName="small", Attributes={"VisibilityTimeout": "1"}), "QueueNameExists", 400),
    (lambda s, u: s.create_queue(QueueName="needs-suffix", Attributes={"FifoQueue": "true"}),
     "InvalidParameterValue", 400),
    (lambda s, u: s.send_message(QueueUrl=u.replace("small", "gone"), MessageBody="x"), "QueueDoesNotExist", 400),
    (lambda s, u: s.receive_message(QueueUrl=u, MaxNumberOfMessages=11), "InvalidParameterValue", 400),
])
def test_bad_input_gets_aws_codes_and_exception_classes(sqs: Any, call: Any, exception: str, status: int) -> None:
    url = sqs.create_queue(QueueName="small", Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call(sqs, url)
    response = err.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["Error"].get("QueryErrorCode", response["Error"]["Code"]) == exception
    modeled = getattr(sqs.exceptions, exception, None)
    if modeled is not None:
        assert isinstance(err.value, modeled)


def test_concurrent_producers_and_consumers_deliver_each_message_once(api: ApiHandle) -> None:
    url = boto3_client(api, "sqs").create_queue(QueueName="work", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    producers, consumers, per_producer = 4, 4, 50
    received: list[str] = []
    lock = threading.Lock()
    done_producing = threading.Event()

    def produce(p: int) -> None:
        client = boto3_client(api, "sqs")
        for start in range(0, per_producer, 10):
            client.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "MessageBody": f"{p}-{i}"} for i in range(start, min(start + 10, per_producer))])

    def consume() -> None:
        client = boto3_client(api, "sqs")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", [])
            if not messages and done_producing.is_set():
                return
            with lock:
                received.extend(m["Body"] for m in messages)
            if messages:
                client.delete_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])

    threads = [threading.Thread(target=consume) for _ in range(consumers)]
    producer_threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in threads + producer_threads:
        t.start()
    for t in producer_threads:
        t.join(30)
    done_producing.set()
    for t in threads:
        t.join(40)
    expected = {f"{p}-{i}" for p in range(producers) for i in range(per_producer)}
    assert sorted(received) == sorted(expected)


def test_aws_cli_talks_to_the_api(api: ApiHandle) -> None:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1"}
    aws = str(Path(sys.executable).with_name("aws"))

    def cli(*args: str) -> dict[str, Any]:
        out = subprocess.run([aws, "--endpoint-url", api.endpoint, "sqs", *args, "--output", "json"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    url = cli("create-queue", "--queue-name", "cli-q")["QueueUrl"]
    cli("send-message", "--queue-url", url, "--message-body", "from the cli")
    (message,) = cli("receive-message", "--queue-url", url)["Messages"]
    assert message["Body"] == "from the cli"
    cli("delete-message", "--queue-url", url, "--receipt-handle", message["ReceiptHandle"])
    missing = subprocess.run([aws, "--endpoint-url", api.endpoint, "sqs", "get-queue-url",
                              "--queue-name", "nope"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode != 0 and "AWS.SimpleQueueService.NonExistentQueue" in missing.stderr


def _query(api: ApiHandle, params: dict[str, str], path: str = "/") -> tuple[int, dict[str, str], ET.Element]:
    client = AwsClient(api.endpoint, "test", "test")
    body = urlencode({"Version": "2012-11-05", **params}).encode()
    status, headers, data = client.request("sqs", "POST", path, body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    return status, headers, ET.fromstring(data)


def test_legacy_query_protocol(api: ApiHandle) -> None:
    status, _, doc = _query(api, {"Action": "CreateQueue", "QueueName": "legacy", "Attribute.1.Name": "DelaySeconds",
                                  "Attribute.1.Value": "0", "Tag.1.Key": "k", "Tag.1.Value": "v"})
    assert status == 200
    url = doc.findtext("q:CreateQueueResult/q:QueueUrl", namespaces=NS)
    assert url == f"{api.endpoint}/000000000000/legacy"
    status, _, doc = _query(api, {"Action": "SendMessage", "QueueUrl": url, "MessageBody": "hello",
                                  "MessageAttribute.1.Name": "a", "MessageAttribute.1.Value.DataType": "String",
                                  "MessageAttribute.1.Value.StringValue": "v"})
    assert doc.findtext("q:SendMessageResult/q:MD5OfMessageBody", namespaces=NS) == "5d41402abc4b2a76b9719d911017c592"
    assert doc.findtext("q:SendMessageResult/q:MD5OfMessageAttributes", namespaces=NS) == \
        "a18cbb58171ebf4ce88d9fb787f9210b"
    # SDKs that post to the queue URL may leave QueueUrl out of the form
    status, _, doc = _query(api, {"Action": "ReceiveMessage", "AttributeName.1": "All",
                                  "MessageAttributeName.1": "All"}, path="/000000000000/legacy")
    message = doc.find("q:ReceiveMessageResult/q:Message", NS)
    assert message is not None and message.findtext("q:Body", namespaces=NS) == "hello"
    names = {a.findtext("q:Name", namespaces=NS) for a in message.findall("q:Attribute", NS)}
    assert {"SenderId", "SentTimestamp", "ApproximateReceiveCount"} <= names
    assert message.findtext("q:MessageAttribute/q:Value/q:StringValue", namespaces=NS) == "v"
    status, _, doc = _query(api, {"Action": "DeleteMessageBatch", "QueueUrl": url,
                                  "DeleteMessageBatchRequestEntry.1.Id": "one",
                                  "DeleteMessageBatchRequestEntry.1.ReceiptHandle":
                                      message.findtext("q:ReceiptHandle", namespaces=NS) or ""})
    assert doc.findtext("q:DeleteMessageBatchResult/q:DeleteMessageBatchResultEntry/q:Id", namespaces=NS) == "one"
    status, _, doc = _query(api, {"Action": "GetQueueUrl", "QueueName": "missing"})
    assert status == 400
    assert doc.findtext("q:Error/q:Code", namespaces=NS) == "AWS.SimpleQueueService.NonExistentQueue"
    assert doc.findtext("q:Error/q:Type", namespaces=NS) == "Sender"


def test_edgeloop_sqs_cli(api: ApiHandle, sqs: Any) -> None:
    from click.testing import CliRunner

    from edgeloop.cli import AppContext
    from gateway.sinks.sqs.cli import sqs as sqs_group

    url = sqs.create_queue(QueueName="cli-view")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="first")
    obj = AppContext(None, {"data_dir": str(api.config.home), "api.port": api.api.port})  # type: ignore[union-attr]
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(sqs_group, list(args), obj=obj, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert "cli-view" in invoke("ls") and "       1 " in invoke("ls")
    assert json.loads(invoke("peek", "cli-view"))["Body"] == "first"
    invoke("send", "cli-view", "second")
    lines = invoke("receive", "cli-view", "--max", "10", "--delete").splitlines()
    assert sorted(json.loads(line)["Body"] for line in lines) == ["first", "second"]
    assert invoke("peek", url) == ""


def test_hand_made_json_with_wrong_types_gets_a_client_error(api: ApiHandle) -> None:
    client = AwsClient(api.endpoint, "test", "test")
    with pytest.raises(AwsError) as err:
        client.json("sqs", "AmazonSQS.CreateQueue", {"QueueName": "q", "Attributes": ["not", "a", "map"]},
                    content_type="application/x-amz-json-1.0")
    assert err.value.code == "InvalidParameterValue" and err.value.status == 400
    with pytest.raises(AwsError) as err:
        client.json("sqs", "AmazonSQS.Frobnicate", {}, content_type="application/x-amz-json-1.0")
    assert err.value.code == "UnknownOperationException"


def test_a_bad_signature_is_refused_with_the_sqs_code(api: ApiHandle) -> None:
    import boto3
    from botocore.config import Config as BotoConfig

    wrong = boto3.client("sqs", endpoint_url=api.endpoint, region_name="us-east-1", aws_access_key_id="test",
                         aws_secret_access_key="wrong", config=BotoConfig(retries={"max_attempts": 1}))
    with pytest.raises(botocore.exceptions.ClientError) as err:
        wrong.list_queues()
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
