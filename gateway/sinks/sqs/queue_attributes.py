"""Queue attributes: names, defaults, validation and normalisation (every value on the wire is a string)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping

from gateway.sinks.sqs.errors import SqsError, invalid_parameter

FIFO_SUFFIX = ".fifo"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_FIFO_NAME = re.compile(r"^[A-Za-z0-9_-]{1,75}\.fifo$")

DEFAULTS: dict[str, str] = {
    "VisibilityTimeout": "30",
    "MaximumMessageSize": "1048576",
    "MessageRetentionPeriod": "345600",
    "DelaySeconds": "0",
    "ReceiveMessageWaitTimeSeconds": "0",
    "SqsManagedSseEnabled": "true",
}
FIFO_DEFAULTS: dict[str, str] = {
    "FifoQueue": "true",
    "ContentBasedDeduplication": "false",
    "DeduplicationScope": "queue",
    "FifoThroughputLimit": "perQueue",
}
FIFO_ONLY = frozenset({"FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"})
COMPUTED = (
    "QueueArn", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed", "CreatedTimestamp", "LastModifiedTimestamp",
)
# Every name GetQueueAttributes accepts (besides "All").
READABLE = frozenset(DEFAULTS) | FIFO_ONLY | frozenset(COMPUTED) | frozenset({
    "Policy", "RedrivePolicy", "RedriveAllowPolicy", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds",
})


def is_fifo_name(name: str) -> bool:
    return name.endswith(FIFO_SUFFIX)


def validate_queue_name(name: str, fifo: bool) -> None:
    """AWS's naming rule: 1–80 of [A-Za-z0-9_-], FIFO names end in .fifo."""
    if fifo:
        if not _FIFO_NAME.match(name):
            raise invalid_parameter(
                "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, "
                "must end with .fifo suffix and be 1 to 80 in length.")
    elif not _NAME.match(name):
        if is_fifo_name(name):
            raise invalid_parameter("Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in "
                                    "length. A queue whose name ends in .fifo must set the attribute FifoQueue=true.")
        raise invalid_parameter(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")


def _bad(name: str, reason: str = "") -> SqsError:
    suffix = f" Reason: {reason}" if reason else ""
    return SqsError("InvalidAttributeValue", f"Invalid value for the parameter {name}.{suffix}")


def _int_range(low: int, high: int) -> Callable[[str, str], str]:
    def check(name: str, value: str) -> str:
        try:
            number = int(value.strip())
        except ValueError:
            raise _bad(name, f"must be an integer from {low} to {high}.") from None
        if not low <= number <= high:
            raise _bad(name, f"must be an integer from {low} to {high}.")
        return str(number)
    return check


def _boolean(name: str, value: str) -> str:
    if value.lower() not in ("true", "false"):
        raise _bad(name, "must be true or false.")
    return value.lower()


def _one_of(*choices: str) -> Callable[[str, str], str]:
    def check(name: str, value: str) -> str:
        if value not in choices:
            raise _bad(name, f"must be one of {', '.join(choices)}.")
        return value
    return check


def _json_object(name: str, value: str) -> dict[str, object]:
    try:
        parsed = json.loads(value)
    except ValueError:
        raise _bad(name, "must be a JSON object.") from None
    if not isinstance(parsed, dict):
        raise _bad(name, "must be a JSON object.")
    return parsed


def _policy(name: str, value: str) -> str:
    if value:
        _json_object(name, value)
    return value


def _redrive_policy(name: str, value: str) -> str:
    if not value:
        return ""
    policy = _json_object(name, value)
    arn = policy.get("deadLetterTargetArn")
    if not isinstance(arn, str) or not arn.startswith("arn:aws:sqs:") or arn.count(":") != 5:
        raise invalid_parameter(f"Value {value} for parameter RedrivePolicy is invalid. Reason: Invalid value for "
                                "deadLetterTargetArn.")
    raw_count = policy.get("maxReceiveCount", 10)
    try:
        count = int(raw_count)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        count = 0
    if not 1 <= count <= 1000:
        raise invalid_parameter(f"Value {value} for parameter RedrivePolicy is invalid. Reason: Invalid value for "
                                "maxReceiveCount: must be an integer from 1 to 1000.")
    return json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": count}, separators=(",", ":"))


def _redrive_allow_policy(name: str, value: str) -> str:
    if not value:
        return ""
    policy = _json_object(name, value)
    permission = policy.get("redrivePermission")
    sources = policy.get("sourceQueueArns")
    if permission not in ("allowAll", "denyAll", "byQueue"):
        raise invalid_parameter(f"Value {value} for parameter RedriveAllowPolicy is invalid. Reason: "
                                "redrivePermission must be allowAll, denyAll or byQueue.")
    if permission == "byQueue" and not (isinstance(sources, list) and 1 <= len(sources) <= 10):
        raise invalid_parameter(f"Value {value} for parameter RedriveAllowPolicy is invalid. Reason: byQueue needs "
                                "1 to 10 sourceQueueArns.")
    if permission != "byQueue" and sources:
        raise invalid_parameter(f"Value {value} for parameter RedriveAllowPolicy is invalid. Reason: "
                                "sourceQueueArns is only allowed with redrivePermission byQueue.")
    return json.dumps(policy, separators=(",", ":"))


def _text(name: str, value: str) -> str:
    return value


_CHECKS: dict[str, Callable[[str, str], str]] = {
    "VisibilityTimeout": _int_range(0, 43200),
    "MaximumMessageSize": _int_range(1024, 1048576),
    "MessageRetentionPeriod": _int_range(60, 1209600),
    "DelaySeconds": _int_range(0, 900),
    "ReceiveMessageWaitTimeSeconds": _int_range(0, 20),
    "Policy": _policy,
    "RedrivePolicy": _redrive_policy,
    "RedriveAllowPolicy": _redrive_allow_policy,
    "KmsMasterKeyId": _text,
    "KmsDataKeyReusePeriodSeconds": _int_range(60, 86400),
    "SqsManagedSseEnabled": _boolean,
    "FifoQueue": _boolean,
    "ContentBasedDeduplication": _boolean,
    "DeduplicationScope": _one_of("messageGroup", "queue"),
    "FifoThroughputLimit": _one_of("perQueue", "perMessageGroupId"),
}


def normalize(attributes: Mapping[str, str], fifo: bool, creating: bool) -> dict[str, str]:
    """Validate user-set attributes; return them normalised (ints canonical, booleans lower-case, JSON compact)."""
    out: dict[str, str] = {}
    for name, value in attributes.items():
        check = _CHECKS.get(name)
        if check is None or (name in FIFO_ONLY and not fifo) or (name == "FifoQueue" and not creating):
            raise SqsError("InvalidAttributeName", f"Unknown Attribute {name}.")
        if not isinstance(value, str):
            raise _bad(name, "must be a string.")
        out[name] = check(name, value)
    if out.get("FifoQueue") == "false" and fifo:
        raise invalid_parameter("A queue whose name ends in .fifo must set the attribute FifoQueue=true.")
    if fifo:
        merged = {**FIFO_DEFAULTS, **out}
        if merged["FifoThroughputLimit"] == "perMessageGroupId" and merged["DeduplicationScope"] != "messageGroup":
            raise invalid_parameter("The perMessageGroupId value is allowed only when the value for "
                                    "DeduplicationScope is messageGroup.")
    return out


def effective(stored: Mapping[str, str], fifo: bool) -> dict[str, str]:
    """Defaults overlaid with what the user set (empty strings mean "unset")."""
    merged = {**DEFAULTS, **(FIFO_DEFAULTS if fifo else {}), **stored}
    if merged.get("KmsMasterKeyId"):
        merged.setdefault("KmsDataKeyReusePeriodSeconds", "300")
        if "SqsManagedSseEnabled" not in stored:
            merged["SqsManagedSseEnabled"] = "false"
    return {k: v for k, v in merged.items() if v != ""}


def redrive_target(stored: Mapping[str, str]) -> tuple[str, int] | None:
    """(dead-letter queue ARN, maxReceiveCount) when a redrive policy is set."""
    raw = stored.get("RedrivePolicy")
    if not raw:
        return None
    policy = json.loads(raw)
    return str(policy["deadLetterTargetArn"]), int(policy["maxReceiveCount"])
