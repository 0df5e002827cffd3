"""Conformance of the pure shadow algorithm with the documented Device Shadow semantics."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.shadow import document as d
from gateway.shadow.document import ShadowLimits, ShadowRecord
from gateway.shadow.errors import ShadowRejection
from gateway.shadow.topics import ShadowKey, parse_request_topic

LIMITS = ShadowLimits()
T0, T1, T2 = 1_700_000_000, 1_700_000_100, 1_700_000_200


def update(record: ShadowRecord | None, body: dict[str, Any] | bytes, now: int = T1,
           limits: ShadowLimits = LIMITS) -> d.UpdateResult:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return d.apply_update(record, d.parse_update(payload, limits), now, limits)


def rejected(body: dict[str, Any] | bytes, record: ShadowRecord | None = None,
             limits: ShadowLimits = LIMITS) -> ShadowRejection:
    with pytest.raises(ShadowRejection) as info:
        update(record, body, limits=limits)
    return info.value


# -- merge -----------------------------------------------------------------------------------------


def test_first_update_creates_version_1_with_leaf_metadata() -> None:
    r = update(None, {"state": {"reported": {"temp": 21, "mode": {"fan": "auto"}}}}, now=T0)
    assert r.record.version == 1
    assert r.record.state == {"reported": {"temp": 21, "mode": {"fan": "auto"}}}
    assert r.record.metadata == {"reported": {"temp": {"timestamp": T0}, "mode": {"fan": {"timestamp": T0}}}}
    assert r.documents["previous"] is None
    assert r.documents["current"]["version"] == 1


def test_merge_nested_objects_and_keep_untouched_keys_and_their_timestamps() -> None:
    first = update(None, {"state": {"desired": {"a": 1, "lights": {"r": 1, "g": 2}}}}, now=T0).record
    second = update(first, {"state": {"desired": {"lights": {"g": 9}}}}, now=T1).record
    assert second.state["desired"] == {"a": 1, "lights": {"r": 1, "g": 9}}
    assert second.metadata["desired"] == {"a": {"timestamp": T0},
                                          "lights": {"r": {"timestamp": T0}, "g": {"timestamp": T1}}}
    assert second.version == 2
    assert first.state["desired"]["lights"]["g"] == 2, "the previous record must not be modified"


def test_null_deletes_a_key_and_its_metadata_and_empty_sections_disappear() -> None:
    rec = update(None, {"state": {"reported": {"a": 1, "b": 2}}}).record
    rec = update(rec, {"state": {"reported": {"a": None, "absent": None}}}).record
    assert rec.state == {"reported": {"b": 2}}
    assert rec.metadata == {"reported": {"b": {"timestamp": T1}}}
    rec = update(rec, {"state": {"reported": {"b": None}}}).record
    assert rec.state == {} and rec.metadata == {}
    assert rec.version == 3


def test_object_emptied_by_nulls_is_removed_but_explicit_empty_object_is_kept() -> None:
    rec = update(None, {"state": {"reported": {"o": {"x": 1}, "keep": {}}}}).record
    assert rec.state["reported"]["keep"] == {}
    rec = update(rec, {"state": {"reported": {"o": {"x": None}}}}).record
    assert rec.state["reported"] == {"keep": {}}


def test_new_object_is_inserted_without_its_nulls() -> None:
    rec = update(None, {"state": {"desired": {"o": {"a": None, "b": {"c": None}, "d": 1}, "gone": {"z": None}}}})
    assert rec.record.state == {"desired": {"o": {"d": 1}}}
    assert rec.accepted["state"] == {"desired": {"o": {"a": None, "b": {"c": None}, "d": 1}, "gone": {"z": None}}}


def test_arrays_are_replaced_whole_with_per_element_metadata() -> None:
    rec = update(None, {"state": {"reported": {"colors": ["red", "green", "blue"]}}}, now=T0).record
    rec = update(rec, {"state": {"reported": {"colors": ["white"]}}}, now=T1).record
    assert rec.state["reported"]["colors"] == ["white"]
    assert rec.metadata["reported"]["colors"] == [{"timestamp": T1}]


def test_scalar_replaced_by_object_and_object_by_scalar() -> None:
    rec = update(None, {"state": {"reported": {"v": 1}}}).record
    rec = update(rec, {"state": {"reported": {"v": {"x": 1}}}}).record
    assert rec.state["reported"]["v"] == {"x": 1}
    rec = update(rec, {"state": {"reported": {"v": "s"}}}).record
    assert rec.state["reported"]["v"] == "s"
    assert rec.metadata["reported"]["v"] == {"timestamp": T1}


def test_section_null_removes_the_section_and_state_null_clears_everything() -> None:
    rec = update(None, {"state": {"desired": {"a": 1}, "reported": {"a": 2}}}).record
    rec2 = update(rec, {"state": {"desired": None}}).record
    assert rec2.state == {"reported": {"a": 2}} and "desired" not in rec2.metadata
    rec3 = update(rec, {"state": None}).record
    assert rec3.state == {} and rec3.metadata == {} and rec3.version == rec.version + 1


def test_every_accepted_update_increments_the_version_even_without_changes() -> None:
    rec = update(None, {"state": {"reported": {"a": 1}}}).record
    for expected in (2, 3):
        rec = update(rec, {"state": {"reported": {"a": 1}}}).record
        assert rec.version == expected
    rec = update(rec, {"state": {}}).record
    assert rec.version == 4


# -- accepted, delta and documents -----------------------------------------------------------------


def test_accepted_echoes_request_state_with_metadata_of_request_leaves_only() -> None:
    rec = update(None, {"state": {"reported": {"a": 1, "b": 2}}}).record
    r = update(rec, {"state": {"reported": {"a": 5, "c": None}}, "clientToken": "tok"}, now=T2)
    assert r.accepted == {"state": {"reported": {"a": 5, "c": None}},
                          "metadata": {"reported": {"a": {"timestamp": T2}, "c": {"timestamp": T2}}},
                          "version": 2, "timestamp": T2, "clientToken": "tok"}
    assert r.documents["clientToken"] == "tok"
    assert r.documents["previous"] == {"state": {"reported": {"a": 1, "b": 2}},
                                       "metadata": {"reported": {"a": {"timestamp": T1}, "b": {"timestamp": T1}}},
                                       "version": 1}
    assert r.documents["current"]["state"] == {"reported": {"a": 5, "b": 2}}
    assert "delta" not in r.documents["current"]["state"]


def test_no_client_token_means_no_client_token_key() -> None:
    r = update(None, {"state": {"desired": {"a": 1}}})
    assert "clientToken" not in r.accepted and "clientToken" not in r.documents
    assert r.delta is not None and "clientToken" not in r.delta


def test_delta_is_the_whole_current_delta_with_desired_metadata() -> None:
    rec = update(None, {"state": {"desired": {"color": "red", "lights": {"r": 1, "g": 2}}}}, now=T0).record
    r = update(rec, {"state": {"reported": {"color": "red", "lights": {"r": 1, "g": 0}}, "desired": {"x": [1]}}},
               now=T1)
    assert r.delta == {"version": 2, "timestamp": T1, "state": {"lights": {"g": 2}, "x": [1]},
                       "metadata": {"lights": {"g": {"timestamp": T0}}, "x": [{"timestamp": T1}]}}


def test_no_delta_when_reported_matches_desired_or_no_desired() -> None:
    rec = update(None, {"state": {"reported": {"a": 1}}})
    assert rec.delta is None
    rec2 = update(rec.record, {"state": {"desired": {"a": 1.0}}})
    assert rec2.delta is None, "1 and 1.0 are the same number"


@pytest.mark.parametrize(("desired", "reported", "delta"), [
    ({"a": 1}, {}, {"a": 1}),
    ({"a": 1}, {"a": 1.0}, {}),
    ({"a": True}, {"a": 1}, {"a": True}),
    ({"a": [1, 2]}, {"a": [1, 2]}, {}),
    ({"a": [1, 2]}, {"a": [2, 1]}, {"a": [1, 2]}),
    ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}}, {"a": {"c": 2}}),
    ({"a": {"b": 1}}, {"a": 5}, {"a": {"b": 1}}),
    ({"a": "x"}, {"b": "y"}, {"a": "x"}),
    ({}, {"b": 1}, {}),
])
def test_compute_delta(desired: dict[str, Any], reported: dict[str, Any], delta: dict[str, Any]) -> None:
    assert d.compute_delta(desired, reported) == delta


def test_get_document_has_delta_and_omits_empty_sections() -> None:
    rec = update(None, {"state": {"desired": {"a": 1}, "reported": {"a": 0, "b": 1}}}, now=T0).record
    got = d.get_document(rec, "thing", "ct", T2)
    assert got == {"state": {"desired": {"a": 1}, "reported": {"a": 0, "b": 1}, "delta": {"a": 1}},
                   "metadata": {"desired": {"a": {"timestamp": T0}},
                                "reported": {"a": {"timestamp": T0}, "b": {"timestamp": T0}}},
                   "version": 1, "timestamp": T2, "clientToken": "ct"}
    only_reported = update(None, {"state": {"reported": {"a": 0}}}).record
    assert set(d.get_document(only_reported, "t", None, T2)["state"]) == {"reported"}


# -- delete and versions ---------------------------------------------------------------------------


def test_delete_keeps_the_version_and_recreation_continues_it() -> None:
    rec = update(None, {"state": {"reported": {"a": 1}}}).record
    rec = update(rec, {"state": {"reported": {"a": 2}}}).record
    tomb, accepted = d.delete_record(rec, "dev", "tok", T1)
    assert accepted == {"version": 2, "timestamp": T1, "clientToken": "tok"}
    assert not tomb.exists and tomb.version == 2
    with pytest.raises(ShadowRejection) as info:
        d.get_document(tomb, "dev", None, T2)
    assert (info.value.code, info.value.message) == (404, "No shadow exists with name: 'dev'")
    with pytest.raises(ShadowRejection):
        d.delete_record(tomb, "dev", None, T2)
    again = update(tomb, {"state": {"reported": {"b": 1}}}, now=T2)
    assert again.record.version == 3
    assert again.record.state == {"reported": {"b": 1}}, "a re-created shadow starts empty"
    assert again.documents["previous"] is None


def test_recreation_after_48_hours_restarts_the_version() -> None:
    tomb = ShadowRecord(7, T0, deleted_at=T0)
    assert update(tomb, {"state": {}}, now=T0 + 48 * 3600).record.version == 8
    assert update(tomb, {"state": {}}, now=T0 + 48 * 3600 + 1).record.version == 1


def test_version_check() -> None:
    rec = update(None, {"state": {"reported": {"a": 1}}}).record
    assert update(rec, {"state": {"reported": {"a": 2}}, "version": 1}).record.version == 2
    err = rejected({"state": {"reported": {"a": 2}}, "version": 5}, rec)
    assert (err.code, err.message) == (409, "Version conflict")
    assert rejected({"state": {"reported": {"a": 1}}, "version": 3}).code == 409
    assert update(None, {"state": {"reported": {"a": 1}}, "version": 0}).record.version == 1


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "code", "message"), [
    (b"not json", 400, "Invalid JSON"),
    (b"", 400, "Invalid JSON"),
    (b'{"state": {"reported": {"a": NaN}}}', 400, "Invalid JSON"),
    (b"\xff\xfe{}", 415, "Unsupported documented encoding; supported encoding is UTF-8"),
    (b"[1, 2]", 400, "Invalid JSON"),
    (b'{"clientToken": "x"}', 400, "Missing required node: state"),
    (b'{"state": 5}', 400, "State node must be an object"),
    (b'{"state": []}', 400, "State node must be an object"),
    (b'{"state": {"desired": 1}}', 400, "Desired node must be an object"),
    (b'{"state": {"reported": "x"}}', 400, "Reported node must be an object"),
    (b'{"state": {"delta": {}}}', 400, "State contains an invalid node: 'delta'"),
    (b'{"state": {}, "metadata": {}}', 400, "Payload contains an invalid node: 'metadata'"),
    (b'{"state": {}, "clientToken": 5}', 400, "Invalid clientToken"),
    (b'{"state": {}, "clientToken": "' + b"x" * 65 + b'"}', 400, "Invalid clientToken"),
    (b'{"state": {}, "version": "1"}', 400, "Invalid version"),
    (b'{"state": {}, "version": 1.0}', 400, "Invalid version"),
    (b'{"state": {}, "version": true}', 400, "Invalid version"),
    (b'{"state": {"reported": {"a": [1, null]}}}', 400, "Arrays must not contain null values"),
])
def test_bad_update_requests(payload: bytes, code: int, message: str) -> None:
    err = rejected(payload)
    assert (err.code, err.message) == (code, message)


def nested(depth: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


def test_depth_limit_counts_a_sections_own_keys_as_level_one() -> None:
    update(None, {"state": {"reported": nested(6)}})
    err = rejected({"state": {"reported": nested(7)}})
    assert (err.code, err.message) == (400, "JSON contains too many levels of nesting; maximum is 6")
    assert rejected({"state": {"desired": {"a": [[[[[[1]]]]]]}}}).code == 400
    deep = ShadowLimits(max_depth=8)
    update(None, {"state": {"reported": nested(8)}}, limits=deep)


def test_size_limit_counts_desired_plus_reported_and_changes_nothing() -> None:
    limits = ShadowLimits(max_state_bytes=100)
    rec = update(None, {"state": {"reported": {"a": "x" * 50}}}, limits=limits).record
    err = rejected({"state": {"desired": {"b": "y" * 50}}}, rec, limits)
    assert (err.code, err.message) == (413, "The payload exceeds the maximum size allowed")
    assert rec.state == {"reported": {"a": "x" * 50}} and rec.version == 1
    shrink = update(rec, {"state": {"reported": {"a": None}, "desired": {"b": "y" * 50}}}, limits=limits)
    assert shrink.record.version == 2


def test_default_size_limit_is_8_kib() -> None:
    update(None, {"state": {"reported": {"a": "x" * (8192 - 8)}}})  # {"a":"…"} is exactly 8192 bytes
    assert rejected({"state": {"reported": {"a": "x" * (8192 - 7)}}}).code == 413


@pytest.mark.parametrize(("payload", "token"), [
    (b"", None), (b"  ", None), (b"{}", None), (b'{"clientToken": "abc"}', "abc"),
])
def test_get_and_delete_requests(payload: bytes, token: str | None) -> None:
    assert d.parse_token_request(payload) == token


@pytest.mark.parametrize("payload", [b"nope", b"[]", b'{"clientToken": 1}', b'{"other": 1}'])
def test_bad_get_and_delete_requests(payload: bytes) -> None:
    with pytest.raises(ShadowRejection) as info:
        d.parse_token_request(payload)
    assert info.value.code == 400


def test_token_of_is_best_effort() -> None:
    assert d.token_of(b'{"clientToken": "t", "state": 5}') == "t"
    assert d.token_of(b"garbage") is None
    assert d.token_of(b'{"clientToken": 5}') is None


def test_error_document_shape() -> None:
    err = ShadowRejection(409, "Version conflict")
    assert d.error_document(err, "t", T1) == {"code": 409, "message": "Version conflict", "timestamp": T1,
                                              "clientToken": "t"}
    assert "clientToken" not in d.error_document(err, None, T1)


# -- properties ------------------------------------------------------------------------------------

scalars = st.one_of(st.integers(-1000, 1000), st.booleans(), st.text(max_size=5),
                    st.floats(allow_nan=False, allow_infinity=False))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text("abc", min_size=1, max_size=2),
                                                                       inner, max_size=3)), max_leaves=10)
patch_values = st.recursive(st.one_of(scalars, st.none()),
                            lambda inner: st.dictionaries(st.text("abc", min_size=1, max_size=2), inner, max_size=3),
                            max_leaves=10)
sections = st.dictionaries(st.text("abc", min_size=1, max_size=2), values, max_size=4)
patches = st.dictionaries(st.text("abc", min_size=1, max_size=2), patch_values, max_size=4)


def _metadata_mirrors(state: Any, meta: Any) -> bool:
    if isinstance(state, dict):
        return isinstance(meta, dict) and meta.keys() == state.keys() and all(
            _metadata_mirrors(v, meta[k]) for k, v in state.items())
    if isinstance(state, list):
        return isinstance(meta, list) and len(meta) == len(state) and all(
            _metadata_mirrors(v, m) for v, m in zip(state, meta, strict=True))
    return isinstance(meta, dict) and set(meta) == {"timestamp"}


def _has_null(value: Any) -> bool:
    if isinstance(value, dict):
        return any(v is None or _has_null(v) for v in value.values())
    return False


@settings(max_examples=100, deadline=None)
@given(sections, patches)
def test_merge_properties(state: dict[str, Any], patch: dict[str, Any]) -> None:
    meta = d.metadata_of(state, T0)
    merged, merged_meta = d.merge(state, meta, patch, T1)
    assert _metadata_mirrors(merged, merged_meta)
    assert not _has_null(merged), "nulls are never stored"
    for key, value in patch.items():
        if value is None:
            assert key not in merged
        elif not isinstance(value, dict):
            assert merged[key] == value
    for key in state.keys() - patch.keys():
        assert merged[key] == state[key] and merged_meta[key] == meta[key]
    again, _ = d.merge(merged, merged_meta, patch, T2)
    assert again == merged, "applying the same patch twice changes nothing more"


@settings(max_examples=100, deadline=None)
@given(sections, sections)
def test_delta_properties(desired: dict[str, Any], reported: dict[str, Any]) -> None:
    delta = d.compute_delta(desired, reported)
    assert set(delta) <= set(desired)
    assert d.compute_delta(desired, desired) == {}
    merged, _ = d.merge(reported, d.metadata_of(reported, T0), desired, T1)
    assert d.compute_delta(desired, merged) == {}, "reporting the desired state clears the delta"


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=64) | st.builds(lambda v: json.dumps(v).encode(),
                                          st.dictionaries(st.sampled_from(["state", "version", "clientToken", "x"]),
                                                          values | st.none(), max_size=3)))
def test_parse_update_only_raises_rejections(payload: bytes) -> None:
    try:
        d.parse_update(payload, LIMITS)
    except ShadowRejection as exc:
        assert exc.code in (400, 415)


def test_documents_payload_is_the_documents_document() -> None:
    first = update(None, {"state": {"reported": {"a": "é"}}})
    assert json.loads(first.documents_payload()) == json.loads(d.encode(first.documents))
    second = update(first.record, {"state": {"desired": {"a": 1}}, "clientToken": "t\"q"})
    assert json.loads(second.documents_payload()) == json.loads(d.encode(second.documents))
    assert json.loads(second.record.snapshot_json())["version"] == 2


def _merged_state(state: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """The reference: `merge` applied section by section."""
    out = dict(state)
    for section, patch in request.items():
        merged = d.merge(out.get(section, {}), {}, patch, T1)[0] if patch is not None else {}
        if merged:
            out[section] = merged
        else:
            out.pop(section, None)
    return out


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["desired", "reported"]), patches | sections | st.none(),
                                max_size=2), min_size=1, max_size=5))
def test_cached_section_json_matches_the_state(requests: list[dict[str, Any]]) -> None:
    record = None
    for state in [r for request in requests for r in (request, request)]:  # repeats store the request's objects
        expected = _merged_state(record.state if record is not None else {}, state)
        result = d.apply_update(record, d.UpdateRequest(state), T1, ShadowLimits(max_state_bytes=10**6))
        record = result.record
        assert record.state == expected, "the fast paths store what the merge gives"
        assert record.state_bytes() == d.state_bytes(record.state)
        assert record.snapshot_json() == d.encode(record.snapshot()).decode(), "cached JSON went stale"
        assert result.accepted_payload() == d.encode(result.accepted)
        assert result.delta_payload() == (d.encode(result.delta) if result.delta is not None else None)
        assert _metadata_mirrors(record.state, record.metadata)


@settings(max_examples=200, deadline=None)
@given(values | sections)
def test_encode_is_compact_utf8_json(value: Any) -> None:
    assert d.encode(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


# -- topics ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("topic", "key", "operation"), [
    ("$aws/things/dev-1/shadow/update", ShadowKey("dev-1"), "update"),
    ("$aws/things/t:1/shadow/name/$cfg/get", ShadowKey("t:1", "$cfg"), "get"),
    ("$aws/things/t/shadow/name/n/delete", ShadowKey("t", "n"), "delete"),
])
def test_request_topics_parse_the_same_every_time(topic: str, key: ShadowKey, operation: str) -> None:
    assert parse_request_topic(topic) == (key, operation)
    assert parse_request_topic(topic) == (key, operation), "a remembered topic parses the same"
    assert key.topic(operation, "accepted") == f"{topic}/accepted"


@pytest.mark.parametrize("topic", ["$aws/things/a b/shadow/update", "$aws/things/t/shadow/name/x y/get",
                                   "$aws/things/t/shadow/upsert", "$aws/things/t/shadow/name/n"])
def test_bad_request_topics_are_rejected_every_time(topic: str) -> None:
    for _ in range(2):
        with pytest.raises(ShadowRejection) as info:
            parse_request_topic(topic)
        assert info.value.code == 400
