"""SQS operations in awsJson shape: request members in, result members out (both wire protocols use this)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.sinks.sqs.engine import SqsEngine
from gateway.sinks.sqs.errors import SqsError


@dataclass
class Call:
    """One decoded request: its members, the Host it came to (for queue URLs) and who sent it."""

    params: dict[str, Any]
    host: str
    sender_id: str

    def queue(self) -> str:
        # Wire input as sent (possibly missing): `SqsEngine.queue` answers MissingParameter for that.
        return self.params.get("QueueUrl")  # type: ignore[return-value]


Handler = Callable[[SqsEngine, Call], Awaitable[dict[str, Any]]]

_MAP_MEMBERS = ("Attributes", "tags", "Tags", "MessageAttributes", "MessageSystemAttributes")
_LIST_MEMBERS = ("TagKeys", "Entries", "AttributeNames", "MessageAttributeNames", "MessageSystemAttributeNames")
_MEMBER_TYPES: dict[str, type] = {**dict.fromkeys(_MAP_MEMBERS, dict), **dict.fromkeys(_LIST_MEMBERS, list)}


def check_member_types(params: dict[str, Any]) -> None:
    """Maps must be objects and lists arrays (botocore checks this client-side; hand-made requests may not)."""
    for name, value in params.items():
        kind = _MEMBER_TYPES.get(name)
        if kind is not None and not isinstance(value, kind):
            shape = "a map of names to values" if kind is dict else "a list"
            raise SqsError("InvalidParameterValue", f"The parameter {name} must be {shape}.")
    for entry in params.get("Entries", ()):
        if not isinstance(entry, dict):
            raise SqsError("InvalidParameterValue", "Every batch entry must be a structure.")
        check_member_types(entry)


def _urls(engine: SqsEngine, call: Call, names: list[str], token: str | None, key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if names:
        out[key] = [engine.queue_url(n, call.host) for n in names]
    if token:
        out["NextToken"] = token
    return out


async def create_queue(engine: SqsEngine, call: Call) -> dict[str, Any]:
    p = call.params
    name = await engine.create_queue(p.get("QueueName"), p.get("Attributes"), p.get("tags"))  # type: ignore[arg-type]
    return {"QueueUrl": engine.queue_url(name, call.host)}


async def get_queue_url(engine: SqsEngine, call: Call) -> dict[str, Any]:
    name = await engine.get_queue_url(call.params.get("QueueName"))  # type: ignore[arg-type]
    return {"QueueUrl": engine.queue_url(name, call.host)}


async def delete_queue(engine: SqsEngine, call: Call) -> dict[str, Any]:
    await engine.delete_queue(call.queue())
    return {}


async def list_queues(engine: SqsEngine, call: Call) -> dict[str, Any]:
    p = call.params
    names, token = engine.list_queues(p.get("QueueNamePrefix"), p.get("MaxResults"), p.get("NextToken"))
    return _urls(engine, call, names, token, "QueueUrls")


async def list_dead_letter_source_queues(engine: SqsEngine, call: Call) -> dict[str, Any]:
    p = call.params
    names, token = engine.list_dead_letter_source_queues(call.queue(), p.get("MaxResults"), p.get("NextToken"))
    return {"queueUrls": [engine.queue_url(n, call.host) for n in names], **({"NextToken": token} if token else {})}


async def get_queue_attributes(engine: SqsEngine, call: Call) -> dict[str, Any]:
    attributes = engine.get_queue_attributes(call.queue(), call.params.get("AttributeNames"))
    return {"Attributes": attributes} if attributes else {}


async def set_queue_attributes(engine: SqsEngine, call: Call) -> dict[str, Any]:
    await engine.set_queue_attributes(call.queue(), call.params.get("Attributes") or {})
    return {}


async def tag_queue(engine: SqsEngine, call: Call) -> dict[str, Any]:
    await engine.tag_queue(call.queue(), call.params.get("Tags") or {})
    return {}


async def untag_queue(engine: SqsEngine, call: Call) -> dict[str, Any]:
    await engine.untag_queue(call.queue(), call.params.get("TagKeys") or [])
    return {}


async def list_queue_tags(engine: SqsEngine, call: Call) -> dict[str, Any]:
    tags = engine.list_queue_tags(call.queue())
    return {"Tags": tags} if tags else {}


async def purge_queue(engine: SqsEngine, call: Call) -> dict[str, Any]:
    await engine.purge_queue(call.queue())
    return {}


async def send_message(engine: SqsEngine, call: Call) -> dict[str, Any]:
    p = call.params
    return await engine.send_message(
        call.queue(), p.get("MessageBody"), p.get("MessageAttributes"), p.get("DelaySeconds"),  # type: ignore[arg-type]
        p.get("MessageGroupId"), p.get("MessageDeduplicationId"),
        system_attributes=p.get("MessageSystemAttributes"), sender_id=call.sender_id)


async def send_message_batch(engine: SqsEngine, call: Call) -> dict[str, Any]:
    return await engine.send_message_batch(call.queue(), call.params.get("Entries") or [], call.sender_id)


async def receive_message(engine: SqsEngine, call: Call) -> dict[str, Any]:
    p = call.params
    system_names = [*(p.get("AttributeNames") or []), *(p.get("MessageSystemAttributeNames") or [])]
    messages = await engine.receive_message(
        call.queue(), p.get("MaxNumberOfMessages", 1), p.get("WaitTimeSeconds"), p.get("VisibilityTimeout"),
        system_names, p.get("MessageAttributeNames") or [], p.get("ReceiveRequestAttemptId"))
    return {"Messages": messages} if messages else {}


async def delete_message(engine: SqsEngine, call: Call) -> dict[str, Any]:
    await engine.delete_message(call.queue(), call.params.get("ReceiptHandle"))  # type: ignore[arg-type]
    return {}


async def delete_message_batch(engine: SqsEngine, call: Call) -> dict[str, Any]:
    return await engine.delete_message_batch(call.queue(), call.params.get("Entries") or [])


async def change_message_visibility(engine: SqsEngine, call: Call) -> dict[str, Any]:
    p = call.params
    if p.get("VisibilityTimeout") is None:
        raise SqsError("MissingParameter", "The request must contain the parameter VisibilityTimeout.")
    await engine.change_message_visibility(call.queue(), p.get("ReceiptHandle"),  # type: ignore[arg-type]
                                           p["VisibilityTimeout"])
    return {}


async def change_message_visibility_batch(engine: SqsEngine, call: Call) -> dict[str, Any]:
    return await engine.change_message_visibility_batch(call.queue(), call.params.get("Entries") or [])


OPERATIONS: dict[str, Handler] = {
    "CreateQueue": create_queue,
    "GetQueueUrl": get_queue_url,
    "DeleteQueue": delete_queue,
    "ListQueues": list_queues,
    "ListDeadLetterSourceQueues": list_dead_letter_source_queues,
    "GetQueueAttributes": get_queue_attributes,
    "SetQueueAttributes": set_queue_attributes,
    "TagQueue": tag_queue,
    "UntagQueue": untag_queue,
    "ListQueueTags": list_queue_tags,
    "PurgeQueue": purge_queue,
    "SendMessage": send_message,
    "SendMessageBatch": send_message_batch,
    "ReceiveMessage": receive_message,
    "DeleteMessage": delete_message,
    "DeleteMessageBatch": delete_message_batch,
    "ChangeMessageVisibility": change_message_visibility,
    "ChangeMessageVisibilityBatch": change_message_visibility_batch,
}
