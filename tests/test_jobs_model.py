"""Pure parts of jobs: request-topic parsing, presigned URLs (checked by our SigV4 verifier), placeholders,
and the validation rules (hypothesis property tests)."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.awsapi import sigv4
from gateway.jobs.documents import Presigner, resolve, s3_location
from gateway.jobs.errors import InvalidRequest
from gateway.jobs.model import check_document, check_status_details, check_timeout
from gateway.jobs.service import parse_request

level = st.text(st.characters(blacklist_characters="/+#\x00", blacklist_categories=("Cs",)), min_size=1, max_size=20)


@given(thing=level, job=level)
def test_request_topics_parse(thing: str, job: str) -> None:
    base = f"$aws/things/{thing}/jobs"
    assert parse_request(f"{base}/get") == (thing, "get", None)
    assert parse_request(f"{base}/start-next") == (thing, "start-next", None)
    assert parse_request(f"{base}/{job}/update") == (thing, "update", job)
    assert parse_request(f"{base}/{job}/get") == (thing, "get", job)
    for own in ("get/accepted", f"{job}/update/rejected", "notify", "notify-next", "start-next/accepted"):
        assert parse_request(f"{base}/{own}")[1] == ""
    assert parse_request(f"{base}/{job}/delete")[1] == "invalid"


@given(bucket=st.from_regex(r"[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]", fullmatch=True),
       key=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40))
def test_presigned_urls_verify_with_the_api_signature_check(bucket: str, key: str) -> None:
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    url = Presigner("http://127.0.0.1:4566", "test", "secret", "us-east-1").url(bucket, key, 60, now)
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    credential = sigv4.verify("GET", parts.path, parts.query, {"Host": parts.netloc}, query, None,
                              {"test": "secret"}, now + dt.timedelta(seconds=30))
    assert credential.service == "s3"
    with pytest.raises(sigv4.SignatureError):
        sigv4.verify("GET", parts.path, parts.query, {"Host": parts.netloc}, query, None, {"test": "secret"},
                     now + dt.timedelta(seconds=61))


def test_placeholders_are_replaced_in_every_string() -> None:
    presigner = Presigner("http://gw:4566", "k", "s", "us-east-1")
    document = json.dumps({"a": ["${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/x/y.bin}"],
                           "b": "get ${aws:iot:s3-presigned-url:https://b.s3.us-east-1.amazonaws.com/k} now",
                           "c": "${aws:iot:s3-presigned-url:https://example.com/not-s3}", "d": 5})
    out = resolve(document, presigner, 10)
    assert out["a"][0].startswith("http://gw:4566/b/x/y.bin?X-Amz-Algorithm=")
    assert out["b"].startswith("get http://gw:4566/b/k?") and out["b"].endswith(" now")
    assert out["c"] == "${aws:iot:s3-presigned-url:https://example.com/not-s3}" and out["d"] == 5
    assert s3_location("https://s3.amazonaws.com/bucket/a%20b") == ("bucket", "a b")


def test_validation_rules() -> None:
    assert check_status_details({"progress": "50", "a:b_c-d": "x"}) == {"progress": "50", "a:b_c-d": "x"}
    for bad in ({"k": 1}, {"": "v"}, {"sp ace": "v"}, {str(i): "v" for i in range(11)}, ["x"], {"k": ""}):
        with pytest.raises(InvalidRequest):
            check_status_details(bad)
    assert check_timeout(10080, "t") == 10080
    for bad_timeout in (0, 10081, True, 1.5, "5"):
        with pytest.raises(InvalidRequest):
            check_timeout(bad_timeout, "t")
    with pytest.raises(InvalidRequest):
        check_document("x" * 40, 32)
    assert check_document('{"a": 1}', 32) == '{"a": 1}'
