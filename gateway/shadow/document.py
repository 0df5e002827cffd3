"""The Device Shadow document algorithm: validation, merge, metadata, delta and response documents.

Pure: no I/O, no clock (callers pass `now`, integer epoch seconds). Stored records are never mutated in
place: an update builds new dictionaries along the patched paths and shares untouched subtrees, so a
record handed out earlier (for `/update/documents` "previous") stays valid.

Semantics (docs/shadows.md has the full table and the choices made where AWS does not document):
- `null` deletes a key; objects merge recursively; arrays and scalars are replaced whole.
- Every accepted update increments the version, even when nothing changed.
- Each stored leaf carries `{"timestamp": T}` metadata; arrays carry one entry per element.
- The delta holds every desired value that differs from reported (1 == 1.0, arrays compared whole).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]  # CPython's, not in typeshed
from typing import Any, NamedTuple

from gateway.shadow.errors import (
    TOO_LARGE,
    UNSUPPORTED_ENCODING,
    VERSION_CONFLICT,
    ShadowRejection,
    bad_request,
    not_found,
    rejection,
)

SECTIONS = ("desired", "reported")
UPDATE_KEYS = frozenset({"state", "clientToken", "version"})
TOKEN_KEYS = frozenset({"clientToken"})
MAX_CLIENT_TOKEN_BYTES = 64
RECREATE_WINDOW_SECS = 48 * 3600  # a shadow re-created within 48 h of its deletion continues the old version

Json = Any
JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ShadowLimits:
    """AWS's document limits (config.shadow): state bytes excluding metadata, nesting depth of each section."""

    max_state_bytes: int = 8192
    max_depth: int = 6


@dataclass(slots=True)
class ShadowRecord:
    """One stored shadow. `deleted_at` is set on a tombstone: it keeps the version for re-creation.

    Treated as immutable once built (not frozen: that costs an `object.__setattr__` per field on every
    update). The compact JSON of each state and metadata section is made once per record and cached: it gives
    the size AWS limits, the stored document and `/update/documents`; an update copies the untouched
    sections' JSON from the record it replaces (`reuse_json`)."""

    version: int
    timestamp: int
    state: JsonObject = field(default_factory=dict)
    metadata: JsonObject = field(default_factory=dict)
    deleted_at: int | None = None
    state_json: dict[str, str] = field(default_factory=dict, compare=False, repr=False)  # section -> JSON
    metadata_json: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    encoded: str | None = field(default=None, compare=False, repr=False)  # cache of snapshot_json()

    @property
    def exists(self) -> bool:
        return self.deleted_at is None

    def snapshot(self) -> JsonObject:
        """The `previous`/`current` shape of `/update/documents` (no delta)."""
        return {"state": self.state, "metadata": self.metadata, "version": self.version}

    def snapshot_json(self) -> str:
        """`snapshot()` as compact JSON, encoded once per record (the store and `/update/documents` share it)."""
        encoded = self.encoded
        if encoded is None:
            state = _object_reusing(self.state, self.state, self.state_json)
            meta = _object_reusing(self.metadata, self.metadata, self.metadata_json)
            encoded = f'{{"state":{state},"metadata":{meta},"version":{self.version}}}'
            self.encoded = encoded
        return encoded

    def state_bytes(self) -> int:
        """The size AWS limits: desired and reported as compact UTF-8 JSON, metadata excluded."""
        state, cache = self.state, self.state_json
        return sum([_utf8_len(_section_json(state, cache, s)) for s in SECTIONS if s in state])

    def reuse_json(self, older: ShadowRecord, sections: Iterable[str]) -> None:
        """Take `older`'s cached JSON of `sections`, which this record shares with it unchanged."""
        for name in sections:
            if name in older.state_json and self.state.get(name) is older.state.get(name):
                self.state_json[name] = older.state_json[name]
            if name in older.metadata_json and self.metadata.get(name) is older.metadata.get(name):
                self.metadata_json[name] = older.metadata_json[name]


def _section_json(tree: JsonObject, cache: dict[str, str], name: str) -> str:
    text = cache.get(name)
    if text is None:
        text = cache[name] = _compact(tree[name])
    return text


_KEY_JSON = {name: f'"{name}"' for name in ("desired", "reported")}


class UpdateRequest(NamedTuple):
    """A validated `/update` request."""

    state: JsonObject | None
    client_token: str | None = None
    version: int | None = None


class UpdateResult(NamedTuple):
    """What an accepted update stores and publishes."""

    record: ShadowRecord
    accepted: JsonObject
    delta: JsonObject | None  # the `/update/delta` document, None when the delta is empty
    previous: ShadowRecord | None = None
    client_token: str | None = None

    @property
    def documents(self) -> JsonObject:
        """The `/update/documents` document."""
        body: JsonObject = {"previous": self.previous.snapshot() if self.previous is not None else None,
                            "current": self.record.snapshot(), "timestamp": self.record.timestamp}
        if self.client_token is not None:
            body["clientToken"] = self.client_token
        return body

    def accepted_payload(self) -> bytes:
        """`accepted` encoded; request sections stored as they are reuse the record's cached JSON."""
        accepted, record = self.accepted, self.record
        if accepted["state"] is None:
            return encode(accepted)
        state = _object_reusing(accepted["state"], record.state, record.state_json)
        meta = _object_reusing(accepted["metadata"], record.metadata, record.metadata_json)
        return (f'{{"state":{state},"metadata":{meta},"version":{record.version},'
                f'"timestamp":{record.timestamp}{self._token_json()}}}').encode()

    def delta_payload(self) -> bytes | None:
        """`delta` encoded (None when there is no delta); a delta that is all of desired reuses its JSON."""
        delta, record = self.delta, self.record
        if delta is None:
            return None
        state = _json_reusing(delta["state"], record.state, record.state_json, "desired")
        meta = _json_reusing(delta["metadata"], record.metadata, record.metadata_json, "desired")
        return (f'{{"version":{record.version},"timestamp":{record.timestamp},"state":{state},'
                f'"metadata":{meta}{self._token_json()}}}').encode()

    def _token_json(self) -> str:
        return f',"clientToken":{_compact(self.client_token)}' if self.client_token is not None else ""

    def documents_payload(self) -> bytes:
        """`documents` encoded, reusing each record's cached snapshot JSON."""
        previous = self.previous.snapshot_json() if self.previous is not None else "null"
        return (f'{{"previous":{previous},"current":{self.record.snapshot_json()},'
                f'"timestamp":{self.record.timestamp}{self._token_json()}}}').encode()


def _json_reusing(value: Json, tree: JsonObject, cache: dict[str, str], name: str) -> str:
    """`value` as JSON: the record's cached JSON of `tree[name]` when `value` is that very object."""
    if value is not None and tree.get(name) is value:
        return _section_json(tree, cache, name)
    return _compact(value)


def _object_reusing(obj: JsonObject, tree: JsonObject, cache: dict[str, str]) -> str:
    """`obj` (sections by name) as JSON, reusing the record's cached JSON of the sections it shares with `tree`."""
    return "{" + ",".join([f"{_KEY_JSON.get(name) or _compact(name)}:{_json_reusing(value, tree, cache, name)}"
                           for name, value in obj.items()]) + "}"


# -- parsing ---------------------------------------------------------------------------------------


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
# The C encoder behind `json.dumps`, made once (JSONEncoder.encode builds a new one on every call).
_C_ENCODE = (c_make_encoder(None, _ENCODER.default, encode_basestring, None, ":", ",", False, False, True)
             if c_make_encoder is not None else None)


def parse_json(payload: bytes) -> Json:
    """Decode a UTF-8 JSON payload (415 for other encodings, 400 for malformed JSON, NaN and Infinity)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise rejection(UNSUPPORTED_ENCODING) from None
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError):
        raise bad_request("Invalid JSON") from None


def _check_keys(body: JsonObject, allowed: frozenset[str]) -> None:
    for key in body:
        if key not in allowed:
            raise bad_request(f"Payload contains an invalid node: '{key}'")


def _client_token(body: JsonObject) -> str | None:
    token = body.get("clientToken")
    if token is None and "clientToken" not in body:
        return None
    if not isinstance(token, str) or len(token.encode()) > MAX_CLIENT_TOKEN_BYTES:
        raise bad_request("Invalid clientToken")
    return token


def token_of(payload: bytes) -> str | None:
    """The request's clientToken if it has a valid one, for echoing it on a rejection; never raises."""
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    token = body.get("clientToken") if isinstance(body, dict) else None
    if isinstance(token, str) and len(token.encode()) <= MAX_CLIENT_TOKEN_BYTES:
        return token
    return None


def parse_token_request(payload: bytes) -> str | None:
    """A `/get` or `/delete` request: empty, or an object with an optional clientToken. Returns the token."""
    if not payload.strip():
        return None
    body = parse_json(payload)
    if not isinstance(body, dict):
        raise bad_request("Invalid JSON")
    _check_keys(body, TOKEN_KEYS)
    return _client_token(body)


def parse_update(payload: bytes, limits: ShadowLimits) -> UpdateRequest:
    """Validate an `/update` request in AWS's order; raises `ShadowRejection` (400/415)."""
    body = parse_json(payload)
    if not isinstance(body, dict):
        raise bad_request("Invalid JSON")
    if "state" not in body:
        raise bad_request("Missing required node: state")
    state = body["state"]
    if state is not None and not isinstance(state, dict):
        raise bad_request("State node must be an object")
    _check_keys(body, UPDATE_KEYS)
    if state is not None:
        for key, section in state.items():
            if key not in SECTIONS:
                raise bad_request(f"State contains an invalid node: '{key}'")
            if section is not None and not isinstance(section, dict):
                raise bad_request(f"{key.capitalize()} node must be an object")
    token = _client_token(body)
    version = body.get("version")
    if "version" in body and (type(version) is not int):
        raise bad_request("Invalid version")
    if state is not None:
        for section in state.values():
            if section is not None:
                _check_section(section, limits.max_depth)
    return UpdateRequest(state, token, version)


def _check_section(section: JsonObject, max_depth: int) -> None:
    if _depth(section, False) > max_depth:
        raise bad_request(f"JSON contains too many levels of nesting; maximum is {max_depth}")


def _depth(value: Json, in_array: bool) -> int:
    """Nesting levels (a section's own keys are level 1; nested objects and arrays add one each).

    Rejects a null array element on the way (one walk over the request does both checks)."""
    if isinstance(value, dict):
        deepest = 0
        for v in value.values():
            if isinstance(v, dict | list):
                deepest = max(deepest, _depth(v, False))
        return 1 + deepest
    if isinstance(value, list):
        deepest = 0
        for v in value:
            if v is None:
                raise bad_request("Arrays must not contain null values")
            if isinstance(v, dict | list):
                deepest = max(deepest, _depth(v, True))
        return 1 + deepest
    return 0


# -- merge and metadata ----------------------------------------------------------------------------


def metadata_of(value: Json, ts: int) -> Json:
    """Metadata mirroring a value: objects recurse, arrays get one entry per element, leaves a timestamp."""
    return _metadata(value, {"timestamp": ts})


def _metadata(value: Json, leaf: JsonObject) -> Json:
    """`metadata_of` with every leaf the same (never mutated) `{"timestamp": T}` object."""
    if isinstance(value, dict):
        return {k: _metadata(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_metadata(v, leaf) for v in value]
    return leaf


def _strip_nulls(value: JsonObject) -> JsonObject | None:
    """`value` without null members (itself when it has none); None when it had nulls and nothing else
    (nothing to insert)."""
    out: JsonObject = {}
    changed = had_null = False
    for k, v in value.items():
        if v is None:
            changed = had_null = True
        elif isinstance(v, dict):
            child = _strip_nulls(v)
            if child is None:
                changed = had_null = True
            else:
                out[k] = child
                changed = changed or child is not v
        else:
            out[k] = v
    if not changed:
        return value
    return None if had_null and not out else out


def merge(state: JsonObject, meta: JsonObject, patch: JsonObject, ts: int,
          patch_meta: JsonObject | None = None) -> tuple[JsonObject, JsonObject]:
    """Apply `patch` to one section and its metadata; returns new objects (the inputs are not modified).

    An object emptied by the patch's nulls is removed; an explicitly empty object `{}` is kept. `patch_meta`,
    when given, is `patch`'s own metadata at `ts` (the `/update/accepted` one): its subtrees are reused for
    values stored as the patch has them.
    """
    new_state, new_meta = dict(state), dict(meta)
    for key, pv in patch.items():
        if pv is None:
            new_state.pop(key, None)
            new_meta.pop(key, None)
            continue
        cv = new_state.get(key)
        if isinstance(pv, dict) and isinstance(cv, dict):
            child_meta = new_meta.get(key)
            child, child_meta = merge(cv, child_meta if isinstance(child_meta, dict) else {}, pv, ts,
                                      patch_meta[key] if patch_meta is not None else None)
            if child or not _has_null(pv):
                new_state[key], new_meta[key] = child, child_meta
            else:
                new_state.pop(key)
                new_meta.pop(key, None)
            continue
        value = _strip_nulls(pv) if isinstance(pv, dict) else pv
        if value is None:
            new_state.pop(key, None)
            new_meta.pop(key, None)
        else:
            new_state[key] = value
            new_meta[key] = patch_meta[key] if patch_meta is not None and value is pv else metadata_of(value, ts)
    return new_state, new_meta


def _replaces_whole(current: JsonObject, patch: JsonObject) -> bool:
    """Whether merging `patch` into `current` gives `patch`'s content: it names every current key and holds
    no null (a deletion) and no object (which merges or loses its nulls)."""
    for value in patch.values():
        if value is None or isinstance(value, dict):
            return False
    return current.keys() <= patch.keys()


def _has_null(value: JsonObject) -> bool:
    return any(v is None or (isinstance(v, dict) and _has_null(v)) for v in value.values())


# -- delta -----------------------------------------------------------------------------------------


def same_value(a: Json, b: Json) -> bool:
    """JSON equality: numbers compare numerically (1 == 1.0), booleans only with booleans."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def compute_delta(desired: JsonObject, reported: JsonObject) -> JsonObject:
    """Every desired value that reported lacks or holds differently; objects recurse, keys only in reported
    never appear. When all of `desired` is in the delta, the result is `desired` itself (its JSON is reused)."""
    out: JsonObject = {}
    whole = True
    for key, dv in desired.items():
        if key not in reported or reported[key] is None:
            out[key] = dv
            continue
        rv = reported[key]
        if isinstance(dv, dict) and isinstance(rv, dict):
            child = compute_delta(dv, rv)
            if child:
                out[key] = child
                whole = whole and child is dv
            else:
                whole = False
        elif not same_value(dv, rv):
            out[key] = dv
        else:
            whole = False
    return desired if whole else out


def delta_metadata(delta: JsonObject, desired_meta: JsonObject) -> JsonObject:
    """The desired-side metadata of exactly the delta's keys."""
    out: JsonObject = {}
    for key, value in delta.items():
        meta = desired_meta.get(key)
        if isinstance(value, dict) and isinstance(meta, dict):  # an object's metadata mirrors its keys
            out[key] = delta_metadata(value, meta)
        elif meta is not None:
            out[key] = meta
    return out


def state_bytes(state: JsonObject) -> int:
    """The size AWS limits: the desired and reported sections as compact UTF-8 JSON (metadata excluded)."""
    return sum(len(_compact(state[s]).encode()) for s in SECTIONS if s in state)


def _compact(value: Json) -> str:
    """Compact JSON with non-ASCII text as UTF-8 (not escaped), as AWS sends it."""
    if _C_ENCODE is not None:
        return "".join(_C_ENCODE(value, 0))
    return _ENCODER.encode(value)


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


# -- operations ------------------------------------------------------------------------------------


def current_version(record: ShadowRecord | None, now: int) -> int:
    """The version an update is checked against and continues from (0 for a new shadow)."""
    if record is None:
        return 0
    if record.deleted_at is not None and now - record.deleted_at > RECREATE_WINDOW_SECS:
        return 0
    return record.version


def apply_update(record: ShadowRecord | None, request: UpdateRequest, now: int, limits: ShadowLimits) -> UpdateResult:
    """Run an accepted-or-rejected update: version check, merge, size check, delta, response documents."""
    version = current_version(record, now)
    if request.version is not None and request.version != version:
        raise rejection(VERSION_CONFLICT)
    live = record if record is not None and record.exists else None
    state: JsonObject = dict(live.state) if live else {}
    meta: JsonObject = dict(live.metadata) if live else {}
    request_meta: JsonObject = metadata_of(request.state or {}, now)  # `/update/accepted`: nulls too
    if request.state is None:
        state, meta = {}, {}
    else:
        for section, patch in request.state.items():
            if patch is None:
                state.pop(section, None)
                meta.pop(section, None)
                continue
            current = state.get(section, {})
            if _replaces_whole(current, patch):
                merged, merged_meta = patch, request_meta[section]
            else:
                merged, merged_meta = merge(current, meta.get(section, {}), patch, now, request_meta[section])
                if merged == patch:  # it holds exactly the request's values: keep the request's objects (and JSON)
                    merged, merged_meta = patch, request_meta[section]
            if merged:
                state[section], meta[section] = merged, merged_meta
            else:
                state.pop(section, None)
                meta.pop(section, None)
    new = ShadowRecord(version + 1, now, state, meta)
    if live is not None:
        new.reuse_json(live, SECTIONS)
    if new.state_bytes() > limits.max_state_bytes:
        raise rejection(TOO_LARGE)
    token = request.client_token
    accepted: JsonObject = {"state": request.state, "metadata": request_meta, "version": new.version,
                            "timestamp": now}
    delta_doc: JsonObject | None = None
    desired = state.get("desired", {})
    delta = compute_delta(desired, state.get("reported", {}))
    if delta:
        delta_doc = {"version": new.version, "timestamp": now, "state": delta,
                     "metadata": meta["desired"] if delta is desired else delta_metadata(delta, meta["desired"])}
    if token is not None:
        accepted["clientToken"] = token
        if delta_doc is not None:
            delta_doc["clientToken"] = token
    return UpdateResult(new, accepted, delta_doc, live, token)


def get_document(record: ShadowRecord | None, display_name: str, client_token: str | None, now: int) -> JsonObject:
    """The `/get/accepted` document (404 rejection when the shadow does not exist)."""
    if record is None or not record.exists:
        raise not_found(display_name)
    state: JsonObject = dict(record.state)
    delta = compute_delta(state.get("desired", {}), state.get("reported", {}))
    if delta:
        state["delta"] = delta
    doc: JsonObject = {"state": state, "metadata": record.metadata, "version": record.version, "timestamp": now}
    if client_token is not None:
        doc["clientToken"] = client_token
    return doc


def delete_record(
    record: ShadowRecord | None, display_name: str, client_token: str | None, now: int
) -> tuple[ShadowRecord, JsonObject]:
    """Delete a shadow: the tombstone to store and the `/delete/accepted` document."""
    if record is None or not record.exists:
        raise not_found(display_name)
    tombstone = ShadowRecord(record.version, now, {}, {}, deleted_at=now)
    doc: JsonObject = {"version": record.version, "timestamp": now}
    if client_token is not None:
        doc["clientToken"] = client_token
    return tombstone, doc


def error_document(error: ShadowRejection, client_token: str | None, now: int) -> JsonObject:
    """The `*/rejected` document."""
    doc: JsonObject = {"code": error.code, "message": error.message, "timestamp": now}
    if client_token is not None:
        doc["clientToken"] = client_token
    return doc


def encode(doc: JsonObject) -> bytes:
    """Serialise a response document (compact UTF-8 JSON)."""
    return _compact(doc).encode()


__all__ = [
    "ShadowLimits", "ShadowRecord", "ShadowRejection", "UpdateRequest", "UpdateResult", "apply_update",
    "compute_delta", "current_version", "delete_record", "delta_metadata", "encode", "error_document",
    "get_document", "merge", "metadata_of", "parse_json", "parse_token_request", "parse_update", "same_value",
    "state_bytes", "token_of",
]
