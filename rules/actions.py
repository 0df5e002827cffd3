"""Rule actions: what each one sends for one message, rendered so the dispatcher only has to ship it.

``Action.render(env, output, payload)`` returns an :class:`ActionInvocation` with the exact request
parameters (templates rendered) and body bytes. It never raises: a problem that only shows at run time
(a rendered topic with a wildcard, a non-UTF-8 body for SQS without useBase64, ...) is reported in
``ActionInvocation.error`` so the dispatcher can send it to the errorAction.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rules.context import Env
from rules.templates import Template
from rules.values import UNDEFINED, Value, to_payload_bytes

ENDPOINT_FIELD = "endpointUrl"  # edgeloop extension: ship the action to a remote AWS-compatible endpoint
MAX_FIREHOSE_BATCH = 500
MAX_TOPIC_BYTES = 256


@dataclass(frozen=True)
class ActionFailure:
    """One entry of the errorAction message's ``failures`` array."""

    failed_action: str  # e.g. "KinesisAction"
    failed_resource: str  # stream name, queue URL, bucket, topic, ...
    error_message: str

    def to_json(self) -> dict[str, str]:
        return {
            "failedAction": self.failed_action,
            "failedResource": self.failed_resource,
            "errorMessage": self.error_message,
        }


@dataclass(slots=True)
class ActionInvocation:
    """One action to run for one message.

    ``params`` by kind (all templates rendered):

    - republish: ``topic``, ``qos``, ``properties`` (dict: ``payload_format_indicator`` int,
      ``content_type``, ``response_topic``, ``correlation_data`` bytes, ``message_expiry`` int,
      ``user_properties`` list of (key, value)) — ``payload`` is the message body;
    - kinesis: ``streamName``, ``partitionKey``, ``data`` (bytes);
    - sqs: ``queueUrl``, ``messageBody`` (str; base64 of the payload when useBase64);
    - s3: ``bucketName``, ``key``, ``body`` (bytes), ``cannedAcl`` (str or None; not enforced locally);
    - firehose: ``deliveryStreamName``, ``records`` (list of bytes, separator appended), ``batch``
      (True: send with PutRecordBatch).
    """

    action: Action
    params: dict[str, Any]
    payload: bytes
    resource: str
    error: str | None = None

    @property
    def kind(self) -> str:
        return self.action.kind

    @property
    def endpoint_url(self) -> str | None:
        return self.action.endpoint_url

    def failure(self, error_message: str | None = None) -> ActionFailure:
        """The errorAction entry for this invocation (``error_message`` overrides ``error``)."""
        return ActionFailure(self.action.aws_name, self.resource, error_message or self.error or "action failed")


@dataclass(frozen=True)
class Action:
    """Base of the supported actions. ``kind`` is the AWS key (``"kinesis"``), ``aws_name`` the name
    AWS uses in error messages (``"KinesisAction"``)."""

    role_arn: str
    endpoint_url: str | None

    kind: ClassVar[str] = ""
    aws_name: ClassVar[str] = ""

    def render(self, env: Env, output: Value, payload: bytes) -> ActionInvocation:
        raise TypeError(f"{type(self).__name__} does not define render()")

    def _fail(self, resource: str, payload: bytes, error: str) -> ActionInvocation:
        return ActionInvocation(self, {}, payload, resource, error)


@dataclass(frozen=True)
class RepublishHeaders:
    FIELDS: ClassVar[tuple[str, ...]] = (
        "payloadFormatIndicator", "contentType", "responseTopic", "correlationData", "messageExpiry", "userProperties",
    )  # fmt: skip

    payload_format_indicator: Template | None = None
    content_type: Template | None = None
    response_topic: Template | None = None
    correlation_data: Template | None = None
    message_expiry: Template | None = None
    user_properties: tuple[tuple[Template, Template], ...] = ()

    def render(self, env: Env) -> tuple[dict[str, Any], str | None]:
        """MQTT 5 properties for the republished message, or an error text."""
        props: dict[str, Any] = {}
        if self.payload_format_indicator is not None:
            fmt = self.payload_format_indicator.render(env)
            if fmt not in ("UNSPECIFIED_BYTES", "UTF8_DATA"):
                return props, f"payloadFormatIndicator rendered to {fmt!r}; expected UNSPECIFIED_BYTES or UTF8_DATA"
            props["payload_format_indicator"] = 1 if fmt == "UTF8_DATA" else 0
        if self.content_type is not None:
            props["content_type"] = self.content_type.render(env)
        if self.response_topic is not None:
            props["response_topic"] = self.response_topic.render(env)
        if self.correlation_data is not None:
            try:
                props["correlation_data"] = base64.b64decode(self.correlation_data.render(env), validate=True)
            except (binascii.Error, ValueError):
                return props, "correlationData must be base64-encoded"
        if self.message_expiry is not None:
            text = self.message_expiry.render(env)
            if not text.isdigit() or not 0 < int(text) < 2**32:
                return props, f"messageExpiry rendered to {text!r}; expected seconds (1 to 4294967295)"
            props["message_expiry"] = int(text)
        if self.user_properties:
            props["user_properties"] = [(k.render(env), v.render(env)) for k, v in self.user_properties]
        return props, None


def _topic_error(topic: str) -> str | None:
    if not topic:
        return "the republish topic rendered empty"
    if "+" in topic or "#" in topic or "\x00" in topic:
        return f"the republish topic {topic!r} contains a wildcard or NUL"
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        return f"the republish topic is longer than {MAX_TOPIC_BYTES} bytes"
    levels = topic.split("/")
    if topic.startswith("$aws/things/") and len(levels) > 3 and levels[3] == "jobs":
        return "republishing to jobs reserved topics is not supported"
    return None


@dataclass(frozen=True)
class RepublishAction(Action):
    topic: Template = field(default_factory=lambda: Template("", []))
    qos: int = 0
    headers: RepublishHeaders | None = None

    kind: ClassVar[str] = "republish"
    aws_name: ClassVar[str] = "RepublishAction"

    def render(self, env: Env, output: Value, payload: bytes) -> ActionInvocation:
        topic = self.topic.render(env)
        error = _topic_error(topic)
        props: dict[str, Any] = {}
        if error is None and self.headers is not None:
            props, error = self.headers.render(env)
        params = {"topic": topic, "qos": self.qos, "properties": props}
        return ActionInvocation(self, params, payload, topic, error)


@dataclass(frozen=True)
class KinesisAction(Action):
    stream_name: Template = field(default_factory=lambda: Template("", []))
    partition_key: Template | None = None

    kind: ClassVar[str] = "kinesis"
    aws_name: ClassVar[str] = "KinesisAction"

    def render(self, env: Env, output: Value, payload: bytes) -> ActionInvocation:
        stream = self.stream_name.render(env)
        key = self.partition_key.render(env) if self.partition_key is not None else uuid.uuid4().hex
        if not stream:
            return self._fail(stream, payload, "streamName rendered empty")
        if not 1 <= len(key) <= 256:
            return self._fail(stream, payload, f"partitionKey must have 1 to 256 characters, got {len(key)}")
        params = {"streamName": stream, "partitionKey": key, "data": payload}
        return ActionInvocation(self, params, payload, stream)


@dataclass(frozen=True)
class SqsAction(Action):
    queue_url: Template = field(default_factory=lambda: Template("", []))
    use_base64: bool = False

    kind: ClassVar[str] = "sqs"
    aws_name: ClassVar[str] = "SqsAction"

    def render(self, env: Env, output: Value, payload: bytes) -> ActionInvocation:
        url = self.queue_url.render(env)
        if not url:
            return self._fail(url, payload, "queueUrl rendered empty")
        if self.use_base64:
            body = base64.b64encode(payload).decode("ascii")
        else:
            try:
                body = payload.decode("utf-8")
            except UnicodeDecodeError:
                return self._fail(url, payload, "the message is not UTF-8 text; set useBase64 to true")
        return ActionInvocation(self, {"queueUrl": url, "messageBody": body}, payload, url)


@dataclass(frozen=True)
class S3Action(Action):
    bucket_name: Template = field(default_factory=lambda: Template("", []))
    key: Template = field(default_factory=lambda: Template("", []))
    canned_acl: str | None = None

    kind: ClassVar[str] = "s3"
    aws_name: ClassVar[str] = "S3Action"

    def render(self, env: Env, output: Value, payload: bytes) -> ActionInvocation:
        bucket, key = self.bucket_name.render(env), self.key.render(env)
        if not bucket or not key:
            return self._fail(bucket, payload, "bucketName and key must not render empty")
        params = {"bucketName": bucket, "key": key, "body": payload, "cannedAcl": self.canned_acl}
        return ActionInvocation(self, params, payload, bucket)


@dataclass(frozen=True)
class FirehoseAction(Action):
    delivery_stream_name: Template = field(default_factory=lambda: Template("", []))
    separator: str | None = None
    batch_mode: bool = False

    kind: ClassVar[str] = "firehose"
    aws_name: ClassVar[str] = "FirehoseAction"

    def render(self, env: Env, output: Value, payload: bytes) -> ActionInvocation:
        stream = self.delivery_stream_name.render(env)
        if not stream:
            return self._fail(stream, payload, "deliveryStreamName rendered empty")
        sep = (self.separator or "").encode("utf-8")
        batch = self.batch_mode and type(output) is list
        if batch:
            elements = [e for e in output if e is not UNDEFINED]
            if not 1 <= len(elements) <= MAX_FIREHOSE_BATCH:
                return self._fail(
                    stream, payload, f"batchMode needs 1 to {MAX_FIREHOSE_BATCH} records, got {len(elements)}"
                )
            records = [to_payload_bytes(e) + sep for e in elements]
        else:
            records = [payload + sep]
        params = {"deliveryStreamName": stream, "records": records, "batch": batch}
        return ActionInvocation(self, params, payload, stream)
