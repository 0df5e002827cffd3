"""Compiled policy sets shared across principals: the shared binding decides exactly as a binding compiled for
one principal alone, sessions of a static policy set share one binding and one decision cache."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.identity.policy import DEV_ALLOW_ALL_POLICY, Authorizer, Decision, PolicyDocument, Principal
from tests.test_policy_support import allow, authorizer, deny, policy

ACTIONS = ["iot:Connect", "iot:Publish", "iot:Receive", "iot:Subscribe", "iot:RetainPublish", "iot:GetThingShadow"]
RESOURCES = [
    "*",
    "arn:aws:iot:*:*:*",
    "arn:aws:iot:*:*:topic/a/*",
    "arn:aws:iot:*:*:topicfilter/a/+",
    "arn:aws:iot:*:*:client/c?",
    "arn:aws:iot:*:*:thing/t1",
    "arn:aws:iot:*:*:topic/${iot:ClientId}/*",
    "arn:aws:iot:*:*:client/${iot:ClientId}",
    "arn:aws:iot:*:*:topic/${iot:Connection.Thing.ThingName}",
    "arn:aws:iot:*:*:thing/${iot:Connection.Thing.ThingName}",
    "arn:aws:iot:${iot:ClientId}:*:topic/*",
    "arn:aws:iot:eu-west-1:*:topic/*",
]
CONDITIONS = [
    None,
    {"StringLike": {"iot:ClientId": "c*"}},
    {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
    {"StringEquals": {"iot:Connection.Thing.Attributes[room]": "r1"}},
    {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
]
NAMES = ["a/b", "a/+", "a", "c1", "c2", "c1/x", "t1", "t1/x", "x", "*", ""]
PRINCIPALS = [
    Principal(client_id="c1"),
    Principal(client_id="c2", source_ip="10.1.2.3"),
    Principal(client_id="t1", thing_name="t1", is_attached=True, thing_attributes={"room": "r1"}),
    Principal(client_id="us-east-1", source_ip="192.168.0.9"),
    Principal(client_id="x", thing_name="x", is_attached=True),
]

statements = st.builds(
    lambda effect, actions, resources, negate, condition: {
        "Effect": effect, "Action": actions, "NotResource" if negate else "Resource": resources,
        **({"Condition": condition} if condition else {}),
    },
    st.sampled_from(["Allow", "Deny"]),
    st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3),
    st.lists(st.sampled_from(RESOURCES), min_size=1, max_size=3),
    st.booleans(),
    st.sampled_from(CONDITIONS),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(statements, min_size=1, max_size=4), min_size=1, max_size=3),
    st.lists(st.tuples(st.sampled_from(range(len(PRINCIPALS))), st.sampled_from(ACTIONS), st.sampled_from(NAMES)),
             min_size=1, max_size=24),
)
def test_shared_binding_decides_as_a_binding_of_one_principal(
    documents: list[list[dict[str, Any]]], requests: list[tuple[int, str, str]]
) -> None:
    policies = tuple(PolicyDocument.parse({"Version": "2012-10-17", "Statement": doc}) for doc in documents)
    auth = authorizer()
    principals = [Principal(**{**_fields(p), "policies": policies}) for p in PRINCIPALS]
    sessions = [auth.session(p, lambda: 0) for p in principals]
    alone = [auth.bind_unshared(p) for p in principals]
    for index, action, name in requests:  # interleaved: sessions of static sets share one decision cache
        principal = principals[index]
        expected = _decide(alone[index], action, name)
        assert _decide(auth.bind(principal), action, name) is expected
        assert auth.authorize(principal, action, name) is expected
        assert sessions[index].allowed(action, name) == expected.allowed
        assert sessions[index].decision(action, name) is expected


def _decide(rules: Mapping[str, Callable[[str], Decision]], action: str, name: str) -> Decision:
    decide = rules.get(action)
    return Decision.IMPLICIT_DENY if decide is None else decide(name)


def _fields(p: Principal) -> dict[str, Any]:
    return {name: getattr(p, name) for name in p.__slots__}  # type: ignore[attr-defined]


def test_sessions_of_a_static_policy_set_share_binding_and_cache() -> None:
    auth = authorizer()
    documents = (PolicyDocument.parse(DEV_ALLOW_ALL_POLICY),)
    first = auth.session(Principal(client_id="a", policies=documents), lambda: 0)
    second = auth.session(Principal(client_id="b", policies=documents), lambda: 0)
    assert first.allowed("iot:Publish", "x/y")
    bound = auth.bind_policies(first.principal)
    assert bound.shared and bound is auth.bind_policies(second.principal)
    assert bound.decisions == {"iot:Publish": {"x/y": True}}  # the second session reads the first's decision
    assert second.allowed("iot:Publish", "x/y") and bound.entries == 1
    assert len({id(decide) for decide in bound.rules.values()}) == 1  # 17 actions, one compiled function


def test_variables_are_bound_per_principal_only_for_the_actions_they_touch() -> None:
    auth = authorizer()
    documents = (policy(allow("iot:Connect", "client/${iot:ClientId}"), allow("iot:Publish", "topic/shared/*"),
                        deny("iot:Publish", "topic/shared/secret")),)  # fmt: skip
    one, two = (Principal(client_id=c, policies=documents) for c in ("c1", "c2"))
    rules_one, rules_two = auth.bind(one), auth.bind(two)
    assert rules_one["iot:Publish"] is rules_two["iot:Publish"]  # compiled once for the policy set
    assert rules_one["iot:Connect"] is not rules_two["iot:Connect"]
    assert auth.authorize(one, "iot:Connect", "c1").allowed and not auth.authorize(one, "iot:Connect", "c2").allowed
    assert auth.authorize(two, "iot:Connect", "c2").allowed
    assert auth.authorize(two, "iot:Publish", "shared/x").allowed
    assert not auth.authorize(two, "iot:Publish", "shared/secret").allowed


def test_a_statement_whose_condition_fails_leaves_the_shared_binding() -> None:
    auth = authorizer()
    documents = (policy(allow("iot:Publish", "topic/*"),
                        deny("iot:Publish", "topic/*", Condition={"StringLike": {"iot:ClientId": "bad-*"}})),)
    good, bad = Principal(client_id="good", policies=documents), Principal(client_id="bad-1", policies=documents)
    assert auth.bind_policies(good) is auth.bind_policies(Principal(client_id="fine", policies=documents))
    assert not auth.bind_policies(bad).shared
    assert auth.authorize(good, "iot:Publish", "t").allowed and not auth.authorize(bad, "iot:Publish", "t").allowed


def test_shared_decision_cache_stays_bounded_and_correct() -> None:
    auth = authorizer()
    documents = (policy(allow("iot:Publish", "topic/a/*")),)
    sessions = [auth.session(Principal(client_id=f"c{i}", policies=documents), lambda: 0) for i in range(3)]
    for session in sessions:
        session.max_entries = 10
    for i in range(60):
        session = sessions[i % 3]
        assert session.allowed("iot:Publish", f"a/{i}") and not session.allowed("iot:Publish", f"b/{i}")
    assert auth.bind_policies(sessions[0].principal).entries <= 10


def test_plans_are_bounded_and_rebuilt_for_new_documents() -> None:
    auth = Authorizer("us-east-1", "123456789012", plan_cache_size=2)
    for i in range(10):
        p = Principal(client_id="c", policies=(policy(allow("iot:Publish", f"topic/t{i}")),))
        assert auth.authorize(p, "iot:Publish", f"t{i}").allowed
        assert not auth.authorize(p, "iot:Publish", f"t{i - 1}").allowed
