"""Property test: the compiled evaluator agrees with a direct, statement-by-statement reference evaluator."""

from __future__ import annotations

from functools import cache
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.identity.policy import Decision, PolicyDocument, Principal
from gateway.identity.policy_document import ACTION_RESOURCE_TYPES
from gateway.identity.policy_glob import ONE, STAR, Glob
from tests.test_policy_support import ACCOUNT, REGION, authorizer

ACTIONS = ["iot:Connect", "iot:Publish", "iot:Receive", "iot:Subscribe"]
RESOURCES = [
    "*",
    "arn:aws:iot:*:*:*",
    "arn:aws:iot:*:*:top*",
    "arn:aws:iot:*:*:*/a/*",
    "arn:aws:iot:*:*:topic/a/*",
    "arn:aws:iot:*:*:topic/a?b",
    "arn:aws:iot:*:*:topicfilter/a/+",
    "arn:aws:iot:*:*:topicfilter/*",
    "arn:aws:iot:*:*:topic/${iot:ClientId}/*",
    "arn:aws:iot:*:*:client/${iot:ClientId}",
    "arn:aws:iot:*:*:topic/${iot:Connection.Thing.ThingName}",
    "arn:aws:iot:*:*:t*c/${*}",
    f"arn:aws:iot:us-*:{ACCOUNT}:topic/x/*",
    "arn:aws:iot:eu-west-1:*:topic/*",
    "arn:aws:iot:*:999999999999:*",
]
NAMES = ["a/b", "a/+", "a/", "a", "axb", "c1/x", "c1", "+", "+/x", "t1", "x/y", "*", ""]

statements = st.fixed_dictionaries(
    {
        "Effect": st.sampled_from(["Allow", "Deny"]),
        "Action": st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3),
        "Resource": st.lists(st.sampled_from(RESOURCES), min_size=1, max_size=3),
        "negate": st.booleans(),
    }
)


def to_statement(raw: dict[str, Any]) -> dict[str, Any]:
    key = "NotResource" if raw["negate"] else "Resource"
    return {"Effect": raw["Effect"], "Action": raw["Action"], key: raw["Resource"]}


def reference_match(glob: Glob, text: str) -> bool:
    units = [u for t in glob for u in ((t,) if t in (STAR, ONE) else tuple(t))]

    @cache
    def go(i: int, j: int) -> bool:
        if i == len(units):
            return j == len(text)
        if units[i] is STAR:
            return go(i + 1, j) or (j < len(text) and go(i, j + 1))
        return j < len(text) and (units[i] is ONE or units[i] == text[j]) and go(i + 1, j + 1)

    return go(0, 0)


def reference_decision(principal: Principal, action: str, name: str) -> Decision:
    resource_type = ACTION_RESOURCE_TYPES[action]
    rest_value = f"{resource_type}/{name}"
    allowed = denied = False
    for document in principal.policies:
        for statement in document.statements:
            if action not in statement.actions:
                continue
            matches: list[bool | None] = []
            for resource in statement.resources:
                if resource.rest is None or resource.region is None or resource.account is None:
                    matches.append(True)
                    continue
                globs = [t.glob(principal) for t in (resource.region, resource.account, resource.rest)]
                if any(g is None for g in globs):
                    matches.append(None)
                    continue
                region, account, rest = globs
                assert region is not None and account is not None and rest is not None
                matches.append(
                    reference_match(region, REGION)
                    and reference_match(account, ACCOUNT)
                    and reference_match(rest, rest_value)
                )
            if statement.not_resource:
                applies = None not in matches and not any(matches)
            else:
                applies = any(m is True for m in matches)
            if applies:
                denied |= statement.is_deny
                allowed |= not statement.is_deny
    return Decision.EXPLICIT_DENY if denied else Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


@settings(max_examples=250, deadline=None)
@given(
    st.lists(st.lists(statements, min_size=1, max_size=4), min_size=1, max_size=2),
    st.sampled_from(["c1", "a", "+", "*"]),
    st.sampled_from([None, "t1"]),
    st.lists(st.tuples(st.sampled_from(ACTIONS), st.sampled_from(NAMES)), min_size=1, max_size=8),
)
def test_compiled_evaluation_matches_reference(
    documents: list[list[dict[str, Any]]],
    client_id: str,
    thing_name: str | None,
    requests: list[tuple[str, str]],
) -> None:
    policies = tuple(
        PolicyDocument.parse({"Version": "2012-10-17", "Statement": [to_statement(s) for s in doc]})
        for doc in documents
    )
    principal = Principal(client_id=client_id, thing_name=thing_name, policies=policies)
    auth = authorizer()
    session = auth.session(principal, lambda: 0)
    for action, name in requests:
        expected = reference_decision(principal, action, name)
        assert auth.authorize(principal, action, name) is expected, (action, name)
        assert session.allowed(action, name) is expected.allowed
