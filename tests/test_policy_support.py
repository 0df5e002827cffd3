"""Small builders shared by the policy tests (no tests of its own)."""

from __future__ import annotations

from typing import Any

from gateway.identity.policy import Authorizer, PolicyDocument, Principal

REGION = "us-east-1"
ACCOUNT = "123456789012"
ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}:"


def statement(effect: str, action: str | list[str], resource: str | list[str], **extra: Any) -> dict[str, Any]:
    """A statement; resources not starting with `arn:` or `*` are prefixed with this test account's ARN."""

    def arn(r: str) -> str:
        return r if r == "*" or r.startswith("arn:") else ARN + r

    resources: str | list[str] = [arn(r) for r in resource] if isinstance(resource, list) else arn(resource)
    return {"Effect": effect, "Action": action, "Resource": resources, **extra}


def allow(action: str | list[str], resource: str | list[str], **extra: Any) -> dict[str, Any]:
    return statement("Allow", action, resource, **extra)


def deny(action: str | list[str], resource: str | list[str], **extra: Any) -> dict[str, Any]:
    return statement("Deny", action, resource, **extra)


def policy(*statements: dict[str, Any]) -> PolicyDocument:
    return PolicyDocument.parse({"Version": "2012-10-17", "Statement": list(statements)})


def principal(*statements: dict[str, Any], client_id: str = "dev-1", **fields: Any) -> Principal:
    """A principal whose only policy holds `statements` (pass `policies=` to give several documents)."""
    if statements:
        fields.setdefault("policies", (policy(*statements),))
    return Principal(client_id=client_id, **fields)


def authorizer() -> Authorizer:
    return Authorizer(REGION, ACCOUNT)
