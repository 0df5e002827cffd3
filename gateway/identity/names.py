"""Name rules of the AWS IoT registry (patterns from the botocore `iot` model) and ARN construction."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.identity.awserrors import InvalidRequest

THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}")
ATTRIBUTE_NAME = re.compile(r"[a-zA-Z0-9_.,@/:#-]{1,128}")
ATTRIBUTE_VALUE = re.compile(r"[a-zA-Z0-9_.,@/:#=\[\]-]{0,800}")
CERTIFICATE_ID = re.compile(r"[a-f0-9]{64}")
DESCRIPTION = re.compile(r"[\x20-\x7e]{0,2028}")

MAX_ATTRIBUTES_WITHOUT_TYPE = 3
MAX_ATTRIBUTES_WITH_TYPE = 50


def _check(pattern: re.Pattern[str], value: object, what: str, rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidRequest(f"invalid {what} {value!r}: must be {rule}")
    return value


def thing_name(value: object, what: str = "thing name") -> str:
    """Validate a thing, thing type or thing group name (they share one rule)."""
    return _check(THING_NAME, value, what, "1-128 characters of a-z A-Z 0-9 : _ -")


def policy_name(value: object) -> str:
    return _check(POLICY_NAME, value, "policy name", "1-128 characters of letters, digits, _ + = , . @ -")


def certificate_id(value: object) -> str:
    """Validate a certificate id (64 hex digits, AWS accepts a 0x prefix and upper case) and normalise it."""
    text = value.lower().removeprefix("0x") if isinstance(value, str) else value
    return _check(CERTIFICATE_ID, text, "certificate id", "64 hexadecimal digits (the certificate's SHA-256)")


def description(value: object) -> str:
    return _check(DESCRIPTION, value, "description", "at most 2028 printable ASCII characters")


def attributes(values: object, with_type: bool) -> dict[str, str]:
    """Validate a thing's attribute map against the name/value rules and the count limit."""
    if not isinstance(values, dict):
        raise InvalidRequest(f"attributes must be a map of name to value, not {type(values).__name__}")
    for name, value in values.items():
        _check(ATTRIBUTE_NAME, name, "attribute name", "1-128 characters of a-z A-Z 0-9 _ . , @ / : # -")
        _check(ATTRIBUTE_VALUE, value, f"value for attribute {name!r}",
               "at most 800 characters of a-z A-Z 0-9 _ . , @ / : # = [ ] -")
    limit = MAX_ATTRIBUTES_WITH_TYPE if with_type else MAX_ATTRIBUTES_WITHOUT_TYPE
    if len(values) > limit:
        kind = "with a thing type" if with_type else "without a thing type"
        raise InvalidRequest(f"a thing {kind} can have at most {limit} attributes, not {len(values)}")
    return dict(values)


def patch_attributes(current: dict[str, str], patch: dict[str, str] | None, merge: bool) -> dict[str, str]:
    """AWS's `attributePayload`: replace the attributes, or with `merge` update them (an empty value
    removes one); no patch keeps them."""
    if patch is None:
        return dict(current)
    if not merge:
        return dict(patch)
    return {k: v for k, v in {**current, **patch}.items() if v != ""}


@dataclass(frozen=True)
class Arns:
    """Builds ARNs for the emulated account and region."""

    region: str
    account_id: str

    def _arn(self, resource: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account_id}:{resource}"

    def thing(self, name: str) -> str:
        return self._arn(f"thing/{name}")

    def thing_type(self, name: str) -> str:
        return self._arn(f"thingtype/{name}")

    def thing_group(self, name: str) -> str:
        return self._arn(f"thinggroup/{name}")

    def policy(self, name: str) -> str:
        return self._arn(f"policy/{name}")

    def cert(self, certificate_id: str) -> str:
        return self._arn(f"cert/{certificate_id}")

    def ca_cert(self, certificate_id: str) -> str:
        return self._arn(f"cacert/{certificate_id}")

    def parse_target(self, target: str) -> tuple[str, str]:
        """Split a policy target ARN into (kind, id): kind is "cert" or "thinggroup"."""
        match = re.fullmatch(r"arn:aws:iot:[^:]*:[^:]*:(cert|thinggroup)/(.+)", target)
        if match is None:
            raise InvalidRequest(
                f"invalid policy target {target!r}: must be a certificate ARN (…:cert/<id>) "
                "or a thing group ARN (…:thinggroup/<name>)"
            )
        return match.group(1), match.group(2)

    def parse_principal(self, principal: str) -> str:
        """The certificate id of a principal given as a certificate ARN or a bare id."""
        match = re.fullmatch(r"arn:aws:iot:[^:]*:[^:]*:cert/(.+)", principal)
        return certificate_id(match.group(1) if match else principal)
