"""The legacy query/XML protocol of SQS (botocore before 1.34.90, older SDKs): form parameters in, XML out.

Requests are turned into the awsJson members (``Attribute.1.Name=…`` becomes ``Attributes: {…}``) and
results rendered from them, following the 2012-11-05 query model: flattened lists and maps named by
their singular location names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from xml.sax.saxutils import escape

XML_NAMESPACE = "http://queue.amazonaws.com/doc/2012-11-05/"

# query location name -> (JSON member, how to fold the numbered items)
_LISTS = {"AttributeName": "AttributeNames", "MessageAttributeName": "MessageAttributeNames",
          "MessageSystemAttributeName": "MessageSystemAttributeNames", "TagKey": "TagKeys",
          "StringListValue": "StringListValues", "BinaryListValue": "BinaryListValues"}
_MAPS = {"Attribute": ("Attributes", "Name"), "MessageAttribute": ("MessageAttributes", "Name"),
         "MessageSystemAttribute": ("MessageSystemAttributes", "Name"), "Tag": ("Tags", "Key")}
# An empty list or map is sent as ``Name=`` (botocore's query serializer), under either spelling.
_EMPTY: dict[str, type] = {"Entries": list, "AttributeNames": list, "MessageAttributeNames": list,
                           "MessageSystemAttributeNames": list, "TagKeys": list, "Attributes": dict, "Tags": dict,
                           "tags": dict, "MessageAttributes": dict, "MessageSystemAttributes": dict}
_ENTRIES = ("SendMessageBatchRequestEntry", "DeleteMessageBatchRequestEntry",
            "ChangeMessageVisibilityBatchRequestEntry")

# JSON result member -> XML element of each flattened item
_RESULT_LISTS = {"QueueUrls": "QueueUrl", "queueUrls": "QueueUrl", "Messages": "Message",
                 "Failed": "BatchResultErrorEntry"}
_XML_ENTITIES = {"\r": "&#13;"}  # a bare CR would come back as LF after XML end-of-line normalisation
_RESULT_MAPS = {"Attributes": ("Attribute", "Name"), "MessageAttributes": ("MessageAttribute", "Name"),
                "Tags": ("Tag", "Key")}


def _tree(params: Mapping[str, str]) -> dict[str, Any]:
    """``A.1.B=x`` -> ``{"A": {1: {"B": "x"}}}`` (numbers stay dict keys until folded)."""
    root: dict[str, Any] = {}
    for key, value in params.items():
        node: dict[Any, Any] = root  # below the top, numbered members have int keys
        parts = [int(p) if p.isdigit() else p for p in key.split(".")]
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return root


def _numbered(node: Any) -> list[Any]:
    if node == "":
        return []
    if not isinstance(node, dict):
        return [node]
    return [node[k] for k in sorted(k for k in node if isinstance(k, int))]


def _fold(node: Mapping[Any, Any], operation: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if not isinstance(key, str):
            continue
        if key in _LISTS:
            out[_LISTS[key]] = _numbered(value)
        elif key in _MAPS:
            member, key_name = _MAPS[key]
            if operation == "CreateQueue" and key == "Tag":
                member = "tags"
            folded: dict[str, Any] = {}
            for item in _numbered(value):
                if isinstance(item, dict) and key_name in item:
                    raw = item.get("Value")
                    folded[item[key_name]] = _fold(raw, operation) if isinstance(raw, dict) else raw
            out[member] = folded
        elif key in _ENTRIES:
            out["Entries"] = [_fold(e, operation) if isinstance(e, dict) else e for e in _numbered(value)]
        elif isinstance(value, dict):
            out[key] = _fold(value, operation)
        elif value == "" and key in _EMPTY:
            out[key] = _EMPTY[key]()
        else:
            out[key] = value
    return out


def decode_request(params: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """(Action, awsJson members) of a query request."""
    tree = _tree({k: v for k, v in params.items() if k not in ("Action", "Version")})
    return params.get("Action", ""), _fold(tree, params.get("Action", ""))


def _element(name: str, value: Any) -> Iterable[str]:
    if isinstance(value, bool):
        yield f"<{name}>{'true' if value else 'false'}</{name}>"
    elif isinstance(value, dict):
        yield f"<{name}>"
        yield from _members(value)
        yield f"</{name}>"
    else:
        yield f"<{name}>{escape(str(value), _XML_ENTITIES)}</{name}>"


def _members(result: Mapping[str, Any], entry_name: str = "") -> Iterable[str]:
    for key, value in result.items():
        if key in _RESULT_MAPS:
            item, key_name = _RESULT_MAPS[key]
            for k, v in value.items():
                yield f"<{item}><{key_name}>{escape(k, _XML_ENTITIES)}</{key_name}>"
                yield from _element("Value", v)
                yield f"</{item}>"
        elif key in _RESULT_LISTS or (key == "Successful" and entry_name):
            item = _RESULT_LISTS.get(key, entry_name)
            for v in value:
                yield from _element(item, v)
        else:
            yield from _element(key, value)


def encode_response(operation: str, result: Mapping[str, Any], request_id: str) -> str:
    """The XML document for a successful call."""
    body = "".join(_members(result, f"{operation}ResultEntry"))
    return (f'<?xml version="1.0"?><{operation}Response xmlns="{XML_NAMESPACE}">'
            f"<{operation}Result>{body}</{operation}Result>"
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{operation}Response>")


def encode_error(code: str, message: str, sender: bool, request_id: str) -> str:
    kind = "Sender" if sender else "Receiver"
    return (f'<?xml version="1.0"?><ErrorResponse xmlns="{XML_NAMESPACE}"><Error><Type>{kind}</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message><Detail/></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>")
