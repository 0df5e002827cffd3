"""The default per-thing policy allows exactly the thing's own topics, and the dev policy everything."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.identity.policy import DEV_ALLOW_ALL_POLICY, PolicyDocument, Principal, default_thing_policy
from tests.test_policy_support import authorizer

AUTH = authorizer()
THING = "lamp-1"
DEFAULT = PolicyDocument.parse(default_thing_policy(THING))
DEVICE = Principal(client_id=THING, thing_name=THING, is_attached=True, policies=(DEFAULT,))
TOPIC_ACTIONS = ("iot:Publish", "iot:Receive")


def allowed(action: str, resource: str, principal: Principal = DEVICE) -> bool:
    return AUTH.authorize(principal, action, resource).allowed


OWN_TOPICS = [
    "things/lamp-1/telemetry",
    "things/lamp-1/a/b/c",
    "$aws/things/lamp-1/shadow/update",
    "$aws/things/lamp-1/shadow/get/accepted",
    "$aws/things/lamp-1/shadow/name/config/update/delta",
    "$aws/things/lamp-1/jobs/get",
    "$aws/things/lamp-1/jobs/job-7/update/accepted",
    "$aws/certificates/create/json",
    "$aws/certificates/create/json/accepted",
    "$aws/certificates/create-from-csr/json/rejected",
    "$aws/provisioning-templates/factory/provision/json",
    "$aws/provisioning-templates/factory/provision/json/accepted",
]
OWN_FILTERS = [
    "things/lamp-1/#",
    "things/lamp-1/+/temp",
    "$aws/things/lamp-1/shadow/get/+",
    "$aws/things/lamp-1/shadow/delete/+",
    "$aws/things/lamp-1/shadow/update/accepted",
    "$aws/things/lamp-1/shadow/name/config/get/+",
    "$aws/things/lamp-1/jobs/notify-next",
    "$aws/things/lamp-1/jobs/start-next/+",
    "$aws/things/lamp-1/jobs/job-7/update/+",
    "$aws/certificates/create/json/accepted",
    "$aws/certificates/create-from-csr/json/+",
    "$aws/provisioning-templates/factory/provision/json/+",
]
FOREIGN_TOPICS = [
    "things/lamp-2/telemetry",
    "things/lamp-1",
    "things/lamp-10/x",
    "$aws/things/lamp-2/shadow/update",
    "$aws/things/lamp-2/shadow/name/config/update",
    "$aws/things/lamp-2/jobs/get",
    "$aws/things/lamp-1/streams/s1/get/json",
    "$aws/things/lamp-1/defender/metrics/json",
    "$aws/events/presence/connected/lamp-1",
    "$aws/rules/r1",
    "other/topic",
]
FOREIGN_FILTERS = [
    "#",
    "+/lamp-1/#",
    "things/+/telemetry",
    "things/#",
    "$aws/things/+/shadow/update",
    "$aws/things/lamp-2/shadow/get/+",
    "$aws/things/lamp-2/jobs/notify",
    "$aws/#",
]


@pytest.mark.parametrize("topic", OWN_TOPICS)
def test_own_topics_publish_and_receive(topic: str) -> None:
    assert all(allowed(action, topic) for action in TOPIC_ACTIONS)


@pytest.mark.parametrize("topic_filter", OWN_FILTERS)
def test_own_filters_subscribe(topic_filter: str) -> None:
    assert allowed("iot:Subscribe", topic_filter)


@pytest.mark.parametrize("topic", FOREIGN_TOPICS)
def test_other_topics_are_denied(topic: str) -> None:
    assert not any(allowed(action, topic) for action in (*TOPIC_ACTIONS, "iot:Subscribe"))


@pytest.mark.parametrize("topic_filter", FOREIGN_FILTERS)
def test_other_filters_are_denied(topic_filter: str) -> None:
    assert not allowed("iot:Subscribe", topic_filter)


def test_connect_only_as_itself_and_nothing_else_granted() -> None:
    assert allowed("iot:Connect", THING)
    for client in ("lamp-2", "lamp-1x", "lamp-", "+", "*"):
        assert not allowed("iot:Connect", client)
    assert not allowed("iot:RetainPublish", "things/lamp-1/x")
    for action in ("iot:GetThingShadow", "iot:UpdateJobExecution", "iot:AssumeRoleWithCertificate"):
        assert not allowed(action, THING)


def test_policy_names_are_literal_even_with_glob_characters() -> None:
    weird = PolicyDocument.parse(default_thing_policy("we?rd*"))
    p = Principal(client_id="we?rd*", policies=(weird,))
    assert allowed("iot:Connect", "we?rd*", p)
    assert not allowed("iot:Connect", "weird-anything", p)
    assert allowed("iot:Publish", "things/we?rd*/x", p)
    assert not allowed("iot:Publish", "things/weird/x", p)


OWN_TREE = re.compile(
    r"(things/lamp-1/|\$aws/things/lamp-1/(shadow|jobs)/|\$aws/certificates/create(-from-csr)?/"
    r"|\$aws/provisioning-templates/.*/provision/).*",
    re.DOTALL,
)
segments = st.sampled_from(["things", "lamp-1", "lamp-2", "$aws", "shadow", "jobs", "certificates", "create",
                            "provisioning-templates", "provision", "get", "+", "#", "x", ""])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(segments, min_size=1, max_size=7))
def test_grants_are_exactly_the_own_trees(parts: list[str]) -> None:
    topic = "/".join(parts)
    expected = OWN_TREE.fullmatch(topic) is not None
    assert allowed("iot:Publish", topic) is expected
    assert allowed("iot:Receive", topic) is expected
    assert allowed("iot:Subscribe", topic) is expected


def test_dev_policy_allows_everything() -> None:
    dev = Principal(client_id="anyone", policies=(PolicyDocument.parse(DEV_ALLOW_ALL_POLICY),))
    for action, resource in [("iot:Connect", "x"), ("iot:Publish", "a/b"), ("iot:Subscribe", "#"),
                             ("iot:RetainPublish", "r"), ("iot:Receive", "$aws/things/t/shadow/update")]:  # fmt: skip
        assert allowed(action, resource, dev)
