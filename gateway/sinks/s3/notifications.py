"""S3 event notifications to SQS: configuration matching and AWS's event JSON."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any
from urllib.parse import quote_plus

from gateway.sinks.s3.model import NULL_VERSION, ObjectVersion

EVENT_TYPES = (
    "s3:ObjectCreated:*", "s3:ObjectCreated:Put", "s3:ObjectCreated:Post", "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload", "s3:ObjectRemoved:*", "s3:ObjectRemoved:Delete",
    "s3:ObjectRemoved:DeleteMarkerCreated",
)


def iso_millis(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def queue_name_of(arn: str) -> str:
    """The queue name at the end of an SQS ARN (``arn:aws:sqs:<region>:<account>:<name>``)."""
    return arn.rsplit(":", 1)[-1]


def _filter_rules(config: dict[str, Any]) -> dict[str, str]:
    rules = config.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    return {r["Name"].lower(): r["Value"] for r in rules}


def event_matches(pattern: str, event_name: str) -> bool:
    """Whether a configured event type (``s3:ObjectCreated:*``) covers ``ObjectCreated:Put``."""
    wanted = pattern.removeprefix("s3:")
    if wanted.endswith(":*"):
        return event_name.startswith(wanted[:-1])
    return wanted == event_name


def matching_queues(notification: dict[str, Any], event_name: str, key: str) -> list[tuple[str, str]]:
    """(configuration id, queue ARN) of every queue configuration that wants this event on this key."""
    out = []
    for config in notification.get("QueueConfigurations", []):
        rules = _filter_rules(config)
        if not key.startswith(rules.get("prefix", "")) or not key.endswith(rules.get("suffix", "")):
            continue
        if any(event_matches(p, event_name) for p in config.get("Events", [])):
            out.append((config.get("Id", ""), config["QueueArn"]))
    return out


def event_record(event_name: str, region: str, account: str, request_id: str, configuration_id: str,
                 v: ObjectVersion, now: float) -> str:
    """The JSON message S3 sends for one event (one record)."""
    obj: dict[str, Any] = {"key": quote_plus(v.key, safe="/"), "sequencer": f"{int(now * 1e6):016X}"}
    if event_name.startswith("ObjectCreated"):
        obj.update(size=v.size, eTag=v.etag)
    if v.version_id != NULL_VERSION:
        obj["versionId"] = v.version_id
    record = {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": region, "eventTime": iso_millis(now),
        "eventName": event_name, "userIdentity": {"principalId": f"AWS:{account}"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": request_id, "x-amz-id-2": secrets.token_hex(16)},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": configuration_id,
               "bucket": {"name": v.bucket, "ownerIdentity": {"principalId": account},
                          "arn": f"arn:aws:s3:::{v.bucket}"},
               "object": obj},
    }
    return json.dumps({"Records": [record]}, separators=(",", ":"))


def test_event(bucket: str, request_id: str, now: float) -> str:
    """The message S3 sends to each destination when a notification configuration is saved."""
    return json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": iso_millis(now), "Bucket": bucket,
                       "RequestId": request_id, "HostId": secrets.token_hex(16)}, separators=(",", ":"))
