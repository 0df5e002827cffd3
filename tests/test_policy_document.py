"""Parsing, validation messages and serialisation of policy documents."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.identity.errors import IdentityError, PolicyError
from gateway.identity.policy import DEV_ALLOW_ALL_POLICY, PolicyDocument, default_thing_policy

GOOD = {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:us-east-1:123456789012:topic/t"}


def doc(*statements: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_statement_may_be_an_object_or_a_list_and_fields_strings_or_lists() -> None:
    single = PolicyDocument.parse({"Version": "2012-10-17", "Statement": GOOD})
    listed = PolicyDocument.parse(json.dumps(doc({**GOOD, "Action": ["iot:Publish"], "Resource": [GOOD["Resource"]]})))
    assert single.statements[0].actions == listed.statements[0].actions == frozenset({"iot:Publish"})
    assert PolicyDocument.parse(json.dumps(doc(GOOD)).encode()) == single


def test_to_json_round_trips() -> None:
    source = doc(
        {**GOOD, "Sid": "pub"},
        {"Effect": "Deny", "NotAction": ["iot:Connect", "iot:Subscribe"], "NotResource": "*",
         "Condition": {"ForAnyValue:StringLike": {"iot:Certificate.Subject.OrganizationalUnit.List": ["a*", "b"]},
                       "Bool": {"iot:Connection.Thing.IsAttached": "true"}}},
    )  # fmt: skip
    parsed = PolicyDocument.parse(source)
    again = PolicyDocument.parse(parsed.to_json())
    assert again == parsed
    assert json.loads(parsed.to_json())["Statement"][0]["Sid"] == "pub"


@pytest.mark.parametrize(
    ("document", "fragments"),
    [
        ("{not json", ["not valid JSON"]),
        (b"\xff\xfe", ["not UTF-8"]),
        ("[]", ["JSON object"]),
        ({"Version": "2012-10-17"}, ["missing Statement"]),
        ({"Version": "2012-10-17", "Statement": []}, ["Statement is empty"]),
        ({"Version": "2020-01-01", "Statement": GOOD}, ["Version", "2012-10-17"]),
        ({"Version": "2012-10-17", "Statement": GOOD, "Extra": 1}, ["unknown key 'Extra'", "Statement"]),
        (doc(GOOD, "nope"), ["Statement[1] must be an object"]),
        (doc({k: v for k, v in GOOD.items() if k != "Effect"}), ["Statement[0].Effect", "missing", "Allow"]),
        (doc({**GOOD, "Effect": "allow"}), ["Statement[0].Effect", "'allow'", '"Allow" or "Deny"']),
        (doc({k: v for k, v in GOOD.items() if k != "Action"}), ["Statement[0].Action", "missing"]),
        (doc({k: v for k, v in GOOD.items() if k != "Resource"}), ["Statement[0].Resource", "missing"]),
        (doc({**GOOD, "NotAction": "iot:Connect"}), ["Statement[0].NotAction", "not both"]),
        (doc({**GOOD, "Action": 5}), ["Statement[0].Action", "string or a list of strings"]),
        (doc({**GOOD, "Action": []}), ["Statement[0].Action", "empty"]),
        (doc({**GOOD, "Resource": ["*", 3]}), ["Statement[0].Resource", "found int"]),
        (
            doc(GOOD, {**GOOD, "Action": "iot:Publsh"}),
            ["Statement[1].Action", "unknown action 'iot:Publsh'", "iot:Publish"],
        ),
        (doc({**GOOD, "Action": "s3:GetObject"}), ["Statement[0].Action", "unknown action", "iot:Connect"]),
        (doc({**GOOD, "Action": "iot:Zz*"}), ["matches no supported action"]),
        (doc({**GOOD, "Action": "Publish"}), ["service:Name"]),
        (doc({**GOOD, "Resource": "topic/t"}), ["Statement[0].Resource", "malformed", "arn:aws:iot:REGION"]),
        (
            doc({**GOOD, "Resource": "arn:aws:iot:us-east-1:1:device/x"}),
            ["unknown resource type 'device'", "topicfilter"],
        ),
        (doc({**GOOD, "Resource": "arn:aws:iot:us-east-1:1:topic"}), ["malformed"]),
        (doc({**GOOD, "Resource": "arn:aws:s3:::bucket/key"}), ["service 's3'", "arn:aws:iot:"]),
        (doc({**GOOD, "Resource": "arn:azure:iot:r:a:topic/x"}), ["unknown partition 'azure'"]),
        (doc({**GOOD, "Resource": "arn:aws:iot::1:topic/x"}), ["empty region or account"]),
        (
            doc({**GOOD, "Resource": "arn:aws:iot:*:*:topic/${iot:Nope}"}),
            ["Statement[0].Resource", "unknown policy variable", "iot:ClientId"],
        ),
        (doc({**GOOD, "Resource": "arn:aws:iot:*:*:topic/${iot:ClientId"}), ["unterminated"]),
        (
            doc({**GOOD, "Resource": "arn:aws:iot:*:*:topic/${iot:Certificate.Subject.Title.List}"}),
            ["cannot be substituted", "ForAllValues"],
        ),
        (
            doc({**GOOD, "Resource": "arn:aws:iot:*:*:topic/${iot:Certificate.Subject.Nickname}"}),
            ["unknown certificate attribute 'Nickname'", "CommonName"],
        ),
        (doc({**GOOD, "Resource": "arn:aws:iot:*:*:topic/${iot:Certificate.Subject.CommonName.0}"}), ["1-based"]),
        (doc({**GOOD, "Principal": "*"}), ["Statement[0].Principal", "not allowed"]),
        (doc({**GOOD, "Sid": 3}), ["Statement[0].Sid"]),
        (doc({**GOOD, "Effects": "Allow"}), ["Statement[0].Effects", "unknown key", "Condition"]),
        (doc({**GOOD, "Condition": []}), ["Statement[0].Condition", "object"]),
        (
            doc({**GOOD, "Condition": {"StringEqualz": {"iot:ClientId": "x"}}}),
            ["Statement[0].Condition", "unknown condition operator 'StringEqualz'", "StringLike"],
        ),
        (doc({**GOOD, "Condition": {"ForSomeValues:StringEquals": {"iot:ClientId": "x"}}}), ["set qualifier"]),
        (doc({**GOOD, "Condition": {"NullIfExists": {"iot:ClientId": "true"}}}), ["Null takes neither"]),
        (doc({**GOOD, "Condition": {"StringEquals": {"iot:Foo": "x"}}}), ["unknown policy variable or condition key"]),
        (doc({**GOOD, "Condition": {"StringEquals": {}}}), ["non-empty object"]),
        (doc({**GOOD, "Condition": {"StringEquals": {"iot:ClientId": []}}}), ["at least one value"]),
        (doc({**GOOD, "Condition": {"StringEquals": {"iot:ClientId": {"a": 1}}}}), ["strings, numbers or booleans"]),
        (doc({**GOOD, "Condition": {"NumericEquals": {"iot:ClientId": "ten"}}}), ["'ten' is not a number"]),
        (doc({**GOOD, "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "yes"}}}), ["not a boolean"]),
        (doc({**GOOD, "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}}), ["not an IP address"]),
        (
            doc({**GOOD, "Condition": {"StringEquals": {"iot:Certificate.AvailableKeys": "x"}}}),
            ["several values", "ForAnyValue"],
        ),
    ],
)
def test_bad_documents_name_the_problem(document: Any, fragments: list[str]) -> None:
    with pytest.raises(PolicyError) as caught:
        PolicyDocument.parse(document)
    message = str(caught.value)
    assert isinstance(caught.value, IdentityError)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_action_wildcards_and_not_action_sets() -> None:
    parsed = PolicyDocument.parse(doc({**GOOD, "Action": "iot:*"}))
    assert {"iot:Publish", "iot:Connect", "iot:GetThingShadow"} <= parsed.statements[0].actions
    assert "greengrass:Discover" not in parsed.statements[0].actions
    parsed = PolicyDocument.parse(doc({"Effect": "Allow", "NotAction": "iot:Connect", "Resource": "*"}))
    assert "iot:Connect" not in parsed.statements[0].actions
    assert "iot:Publish" in parsed.statements[0].actions


def test_ready_made_policies_parse() -> None:
    assert PolicyDocument.parse(DEV_ALLOW_ALL_POLICY).statements[0].actions >= {"iot:Connect", "iot:Publish"}
    assert len(PolicyDocument.parse(default_thing_policy("t-1")).statements) == 3
