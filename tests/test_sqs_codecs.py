"""Property tests for the SQS codecs: the operation-log line format and the legacy query/XML protocol."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.sinks.sqs.checksums import md5_of_attributes
from gateway.sinks.sqs.oplog import decode_lines, encode
from gateway.sinks.sqs.query import decode_request, encode_response

NS = "{http://queue.amazonaws.com/doc/2012-11-05/}"
xml_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1)
names = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)
records = st.lists(st.dictionaries(st.sampled_from(["o", "id", "b", "v", "c"]),
                                   st.one_of(st.text(), st.integers(), st.floats(allow_nan=False))), max_size=20)


@given(records)
def test_log_lines_round_trip(items: list[dict[str, Any]]) -> None:
    data = b"".join(encode(r) for r in items)
    decoded, good = decode_lines(data)
    assert decoded == items and good == len(data)


@given(records, st.data())
def test_a_torn_log_yields_an_intact_prefix(items: list[dict[str, Any]], data: st.DataObject) -> None:
    blob = b"".join(encode(r) for r in items)
    cut = data.draw(st.integers(0, len(blob)))
    decoded, good = decode_lines(blob[:cut])
    assert decoded == items[:len(decoded)]
    assert good <= cut and blob[:good] == b"".join(encode(r) for r in decoded)


@given(st.dictionaries(names, xml_text, min_size=1, max_size=10), st.dictionaries(names, xml_text, max_size=5))
def test_query_requests_fold_into_json_members(attributes: dict[str, str], tags: dict[str, str]) -> None:
    params = {"Action": "CreateQueue", "Version": "2012-11-05", "QueueName": "q"}
    for i, (name, value) in enumerate(attributes.items(), 1):
        params[f"Attribute.{i}.Name"] = name
        params[f"Attribute.{i}.Value"] = value
    for i, (key, value) in enumerate(tags.items(), 1):
        params[f"Tag.{i}.Key"] = key
        params[f"Tag.{i}.Value"] = value
    action, members = decode_request(params)
    assert action == "CreateQueue"
    assert members["Attributes"] == attributes
    assert members.get("tags", {}) == tags


@given(st.lists(st.tuples(xml_text, st.dictionaries(names, xml_text, max_size=3)), min_size=1, max_size=10))
def test_batch_entries_with_message_attributes_fold(entries: list[tuple[str, dict[str, str]]]) -> None:
    params = {"Action": "SendMessageBatch", "QueueUrl": "u"}
    for i, (body, attributes) in enumerate(entries, 1):
        params[f"SendMessageBatchRequestEntry.{i}.Id"] = f"e{i}"
        params[f"SendMessageBatchRequestEntry.{i}.MessageBody"] = body
        for j, (name, value) in enumerate(attributes.items(), 1):
            prefix = f"SendMessageBatchRequestEntry.{i}.MessageAttribute.{j}"
            params[f"{prefix}.Name"] = name
            params[f"{prefix}.Value.DataType"] = "String"
            params[f"{prefix}.Value.StringValue"] = value
    _, members = decode_request(params)
    assert [e["MessageBody"] for e in members["Entries"]] == [body for body, _ in entries]
    for entry, (_, attributes) in zip(members["Entries"], entries, strict=True):
        assert entry.get("MessageAttributes", {}) == {
            k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}


@given(xml_text, st.dictionaries(names, xml_text, max_size=5))
def test_xml_results_escape_any_text(body: str, attributes: dict[str, str]) -> None:
    result = {"Messages": [{"MessageId": "m", "Body": body, "Attributes": attributes}]}
    root = ET.fromstring(encode_response("ReceiveMessage", result, "req"))
    message = root.find(f"{NS}ReceiveMessageResult/{NS}Message")
    assert message is not None and message.findtext(f"{NS}Body") == body
    parsed = {a.findtext(f"{NS}Name"): a.findtext(f"{NS}Value") for a in message.findall(f"{NS}Attribute")}
    assert parsed == attributes


@given(st.dictionaries(names, xml_text, min_size=1, max_size=10))
def test_attribute_digest_ignores_order(attributes: dict[str, str]) -> None:
    wire = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
    assert md5_of_attributes(wire) == md5_of_attributes(dict(reversed(list(wire.items()))))


def test_attribute_digest_vectors() -> None:
    """Vectors cross-checked against moto's server (string, number, binary and custom types)."""
    assert md5_of_attributes({"a": {"DataType": "String", "StringValue": "v"}}) == "a18cbb58171ebf4ce88d9fb787f9210b"
    assert md5_of_attributes({"temp": {"DataType": "Number", "StringValue": "21.5"},
                              "dev": {"DataType": "String", "StringValue": "gw-1"}}) == \
        "2db57504cd6424b09885d3702861a50f"
    assert md5_of_attributes({"a": {"DataType": "String", "StringValue": "v"},
                              "b": {"DataType": "Binary", "BinaryValue": "AAE="}}) == \
        "f3eef722b9e535eb41b93a467449512d"
    assert md5_of_attributes({"n": {"DataType": "Number.float", "StringValue": "1.5"}}) == \
        "7ff439f86a8679855ed063fc41dbf015"


def test_empty_collections_in_query_requests() -> None:
    """botocore's query serializer sends an empty list as ``Name=`` (under the member or the item name)."""
    assert decode_request({"Action": "SendMessageBatch", "QueueUrl": "u", "Entries": ""})[1]["Entries"] == []
    assert decode_request({"Action": "SendMessageBatch", "SendMessageBatchRequestEntry": ""})[1]["Entries"] == []
    assert decode_request({"Action": "GetQueueAttributes", "AttributeName": ""})[1]["AttributeNames"] == []
