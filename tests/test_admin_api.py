"""The admin API under /_edgeloop/: authentication (bearer token, SigV4), rules CRUD applied to a live gateway,
the test endpoints against `edgeloop rules test`, registry and jobs views, health and metrics."""

from __future__ import annotations

import base64
import json
import os
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from edgeloop.cli import root
from gateway.admin.auth import ensure_token, token_path
from gateway.admin.errors import MethodNotAllowed, NotFound
from gateway.admin.router import Router
from gateway.awsapi.sigv4 import sign_headers
from tests.test_dispatch_support import ROLE, GatewayThread, Publisher, read_stream, running_gateway

ARN = "arn:aws:iot:us-east-1:000000000000"
KINESIS = {"kinesis": {"roleArn": ROLE, "streamName": "admin-s", "partitionKey": "${topic(2)}"}}
SQL = "SELECT temp, clientid() AS who FROM 'sensors/+/telemetry' WHERE temp > 3"


class Answer:
    """One HTTP answer: status, headers and the JSON body."""

    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.doc = json.loads(body) if body else None

    @property
    def error_code(self) -> str:
        return str(self.doc["error"]["code"])


def request(gw: GatewayThread, method: str, path: str, body: Any = None, token: str | None = None,
            headers: dict[str, str] | None = None) -> Answer:
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(gw.endpoint + path, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return Answer(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers, exc.read())


def signed(gw: GatewayThread, method: str, path: str, body: bytes = b"", secret: str | None = None,
           service: str = "execute-api", send_body: bytes | None = None) -> Answer:
    """A SigV4-signed request (signed over `body`; `send_body` sends other bytes, to tamper)."""
    host = gw.endpoint.removeprefix("http://")
    raw_path, _, raw_query = path.partition("?")
    headers = sign_headers(method, raw_path, raw_query, {"host": host, "content-type": "application/json"}, body,
                           gw.config.api.access_key, secret or gw.config.api.secret_key, "us-east-1", service)
    return request(gw, method, path, body=send_body if send_body is not None else body, headers=headers)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    with running_gateway(tmp_path_factory.mktemp("admin") / "home") as handle:
        yield handle


@pytest.fixture(scope="module")
def token(gw: GatewayThread) -> str:
    return token_path(gw.config.home).read_text().strip()


def admin(gw: GatewayThread, token: str, method: str, path: str, body: Any = None) -> Answer:
    return request(gw, method, "/_edgeloop/" + path, body, token=token)


def cli(home: Path, *args: str) -> str:
    result = CliRunner().invoke(root, ["--home", str(home), "rules", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


# --- authentication -------------------------------------------------------------------------------------------

def test_nothing_is_answered_unauthenticated(gw: GatewayThread, token: str) -> None:
    cases = [
        request(gw, "GET", "/_edgeloop/health"),
        request(gw, "GET", "/_edgeloop/no/such/route"),
        request(gw, "DELETE", "/_edgeloop/rules/anything"),
        request(gw, "GET", "/_edgeloop/health", token=token[:-1] + ("A" if token[-1] != "A" else "B")),
        request(gw, "GET", "/_edgeloop/health", token=""),
        request(gw, "GET", "/_edgeloop/health", headers={"Authorization": f"Basic {token}"}),
        signed(gw, "GET", "/_edgeloop/health", secret="not-the-secret"),
        signed(gw, "PUT", "/_edgeloop/rules/tampered", body=b'{"sql": "SELECT * FROM \'a\'", "actions": []}',
               send_body=b'{"sql": "SELECT * FROM \'b\'", "actions": []}'),
    ]
    for answer in cases:
        assert answer.status == 401 and answer.error_code == "Unauthenticated", answer.doc
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert "tampered" not in admin(gw, token, "GET", "rules").doc["rules"]


def test_bearer_token_and_sigv4_with_any_service_name_are_admitted(gw: GatewayThread, token: str) -> None:
    bearer = admin(gw, token, "GET", "health")
    assert bearer.status == 200 and bearer.doc["status"] == "ok"
    for service in ("execute-api", "iot", "edgeloop"):
        answer = signed(gw, "GET", "/_edgeloop/health", service=service)
        assert answer.status == 200 and answer.doc["status"] == "ok", answer.doc
    body = json.dumps({"sql": "SELECT * FROM 'signed/topic'", "actions": []}).encode()
    put = signed(gw, "PUT", "/_edgeloop/rules/signed_rule", body=body)
    assert put.status == 201 and put.doc["topicFilter"] == "signed/topic"
    assert signed(gw, "DELETE", "/_edgeloop/rules/signed_rule").status == 200


def test_token_file_is_private_and_stable_across_restarts(home: Path) -> None:
    with running_gateway(home) as first:
        path = token_path(home)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        token = path.read_text().strip()
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) == 32
        banner = "\n".join(first.gateway.describe())
        assert f"/_edgeloop/  (bearer token in {path})" in banner
    with running_gateway(home) as second:
        assert path.read_text().strip() == token
        assert request(second, "GET", "/_edgeloop/health", token=token).status == 200


def test_blank_token_file_is_replaced_and_loose_mode_is_tightened(tmp_path: Path) -> None:
    path = token_path(tmp_path)
    path.write_text("\n")
    token = ensure_token(tmp_path)
    assert token and path.read_text().strip() == token and stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o644)
    assert ensure_token(tmp_path) == token and stat.S_IMODE(path.stat().st_mode) == 0o600


# --- rules ----------------------------------------------------------------------------------------------------

def test_rule_crud_applies_to_the_running_gateway(gw: GatewayThread, token: str) -> None:
    gw.client("kinesis").create_stream(StreamName="admin-s", ShardCount=1)
    payload = {"sql": SQL, "actions": [KINESIS], "description": "temperatures"}
    created = admin(gw, token, "PUT", "rules/temps", payload)
    assert created.status == 201 and created.doc["enabled"] and created.doc["loaded"]
    assert created.doc["topicRulePayload"] == payload and created.doc["counters"]["matched"] == 0
    listed = {r["ruleName"]: r for r in admin(gw, token, "GET", "rules").doc["rules"]}
    assert listed["temps"]["topicFilter"] == "sensors/+/telemetry" and listed["temps"]["actions"] == ["kinesis"]

    publisher = Publisher(gw.dev_port, "dev7")
    try:
        publisher.wait_acked([publisher.publish("sensors/s1/telemetry", json.dumps({"temp": 9}))])
        assert gw.drained()
        got = admin(gw, token, "GET", "rules/temps").doc
        assert got["counters"]["matched"] == 1 and got["counters"]["actions"]["kinesis#0"]["dispatched"] == 1
        assert read_stream(gw.client("kinesis"), "admin-s") == [b'{"temp":9,"who":"dev7"}']

        disabled = admin(gw, token, "POST", "rules/temps/disable")
        assert disabled.status == 200 and disabled.doc["enabled"] is False
        publisher.wait_acked([publisher.publish("sensors/s1/telemetry", json.dumps({"temp": 10}))])
        assert gw.drained()
        assert admin(gw, token, "GET", "rules/temps").doc["counters"]["matched"] == 1

        assert admin(gw, token, "POST", "rules/temps/enable").doc["enabled"] is True
        replaced = admin(gw, token, "PUT", "rules/temps", {**payload, "sql": "SELECT * FROM 'other/+'"})
        assert replaced.status == 200 and replaced.doc["createdAt"] == created.doc["createdAt"]
        assert gw.rules.index.get("temps").topic_filter == "other/+"
        publisher.wait_acked([publisher.publish("other/x", json.dumps({"n": 1}))])
        assert gw.drained()
        assert admin(gw, token, "GET", "rules/temps").doc["counters"]["matched"] == 2
    finally:
        publisher.close()

    deleted = admin(gw, token, "DELETE", "rules/temps")
    assert deleted.status == 200 and deleted.doc == {"ruleName": "temps", "deleted": True}
    assert gw.rules.index.get("temps") is None
    assert admin(gw, token, "GET", "rules/temps").status == 404


def test_bad_requests_say_what_is_wrong(gw: GatewayThread, token: str) -> None:
    bad_sql = admin(gw, token, "PUT", "rules/broken", {"sql": "SELECT * FROM 'a' WHERE", "actions": []})
    assert bad_sql.status == 400 and bad_sql.error_code == "SqlParseError"
    error = bad_sql.doc["error"]
    assert error["line"] == 1 and error["column"] >= 23 and error["message"].startswith("line 1, column")
    invalid_json = admin(gw, token, "PUT", "rules/broken", b'{"sql": ')
    assert invalid_json.status == 400 and invalid_json.error_code == "InvalidJson"
    assert admin(gw, token, "PUT", "rules/broken", [1, 2]).status == 400
    bad_name = admin(gw, token, "PUT", "rules/bad-name", {"sql": "SELECT * FROM 'a'", "actions": []})
    assert bad_name.status == 400 and "invalid rule name" in bad_name.doc["error"]["message"]
    missing_field = admin(gw, token, "PUT", "rules/broken", {"sql": "SELECT * FROM 'a'", "actions": [
        {"kinesis": {"roleArn": ROLE}}]})
    assert missing_field.status == 400 and "streamName" in missing_field.doc["error"]["message"]
    assert "broken" not in [r["ruleName"] for r in admin(gw, token, "GET", "rules").doc["rules"]]

    for method, path in (("GET", "rules/nothing"), ("POST", "rules/nothing/enable"), ("DELETE", "rules/nothing"),
                         ("GET", "things/nothing"), ("GET", "policies/nothing"), ("GET", "jobs/nothing"),
                         ("GET", "nowhere")):
        answer = admin(gw, token, method, path)
        assert answer.status == 404, (method, path, answer.doc)
    wrong_method = admin(gw, token, "PATCH", "rules/nothing")
    assert wrong_method.status == 405 and wrong_method.headers["Allow"] == "DELETE, GET, PUT"
    too_large = admin(gw, token, "POST", "rules/test", b"x" * (1024 * 1024 + 1))
    assert too_large.status == 413 and too_large.error_code == "PayloadTooLarge"
    rule = {"sql": "SELECT * FROM 'a'", "actions": []}
    no_topic = admin(gw, token, "POST", "rules/test", {"rule": rule, "payload": "{}"})
    assert no_topic.status == 400 and "topic" in no_topic.doc["error"]["message"]
    both = admin(gw, token, "POST", "rules/test", {"rule": rule, "topic": "a", "payload": "{}", "payloadBase64": "e3"})
    assert both.status == 400 and "exactly one" in both.doc["error"]["message"]


def test_test_endpoints_answer_what_rules_test_prints(gw: GatewayThread, token: str) -> None:
    home = gw.config.home
    assert admin(gw, token, "PUT", "rules/trial", {"sql": SQL, "actions": [KINESIS]}).status == 201
    message = {"topic": "sensors/s9/telemetry", "payload": '{"temp": 7}', "clientId": "dev1"}
    answer = admin(gw, token, "POST", "rules/trial/test", message)
    assert answer.status == 200
    doc = answer.doc
    assert doc["matched"] and doc["output"] == {"temp": 7, "who": "dev1"}
    assert doc["actions"] == [{"index": 0, "kind": "kinesis", "params": {
        "streamName": "admin-s", "partitionKey": "s9", "data": '{"temp":7,"who":"dev1"}'}}]
    args = ("--topic", message["topic"], "--payload", message["payload"], "--client-id", "dev1")
    assert json.loads(cli(home, "test", "trial", *args, "--json")) == doc
    assert cli(home, "test", "trial", *args).splitlines() == doc["report"]

    filtered = admin(gw, token, "POST", "rules/trial/test", {**message, "payload": '{"temp": 1}'}).doc
    assert not filtered["matched"] and filtered["topicMatches"] and filtered["actions"] == []
    assert filtered["report"][-1] == "WHERE: false or undefined -> no actions run"

    raw = base64.b64encode(b"\xff\x00").decode()
    sqs = {"sqs": {"roleArn": ROLE, "queueUrl": "http://q/000000000000/q"}}
    unnamed = {"rule": {"sql": "SELECT * FROM 'b'", "actions": [sqs]}, "topic": "b", "payloadBase64": raw}
    got = admin(gw, token, "POST", "rules/test", unnamed).doc
    assert got["outputBase64"] == raw and got["actions"][0]["error"].startswith("the message is not UTF-8")
    (home / "raw.bin").write_bytes(b"\xff\x00")
    printed = cli(home, "test", "--sql", "SELECT * FROM 'b'", "--action", json.dumps(sqs), "--topic", "b",
                  "--payload", f"@{home / 'raw.bin'}", "--json")
    assert json.loads(printed) == got

    ingest = admin(gw, token, "POST", "rules/trial/test", {**message, "topic": "$aws/rules/trial/sensors/s2/x"}).doc
    assert ingest["basicIngest"] and ingest["matched"] and ingest["actions"][0]["params"]["partitionKey"] == "s2"
    bad_rule = {"sql": "SELECT FROM", "actions": []}
    bad = admin(gw, token, "POST", "rules/test", {"rule": bad_rule, "topic": "a", "payload": "{}"})
    assert bad.status == 400 and bad.doc["error"]["line"] == 1
    assert admin(gw, token, "DELETE", "rules/trial").status == 200


# --- registry, jobs, health, metrics --------------------------------------------------------------------------

def test_registry_and_jobs_views(gw: GatewayThread, token: str) -> None:
    iot = gw.client("iot")
    iot.create_thing(thingName="pump-1", attributePayload={"attributes": {"site": "north"}})
    iot.create_thing_group(thingGroupName="pumps")
    iot.add_thing_to_thing_group(thingGroupName="pumps", thingName="pump-1")
    cert = iot.create_keys_and_certificate(setAsActive=True)
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
    iot.create_policy(policyName="pump-policy", policyDocument=json.dumps(document))
    iot.attach_policy(policyName="pump-policy", target=cert["certificateArn"])
    iot.attach_thing_principal(thingName="pump-1", principal=cert["certificateArn"])

    things = admin(gw, token, "GET", "things").doc["things"]
    assert [t["attributes"] for t in things if t["thingName"] == "pump-1"] == [{"site": "north"}]
    thing = admin(gw, token, "GET", "things/pump-1").doc
    assert thing["groups"] == ["pumps"] and thing["attributes"] == {"site": "north"}
    assert thing["principals"] == [{"principal": cert["certificateArn"], "thingPrincipalType": "NON_EXCLUSIVE_THING",
                                    "certificateId": cert["certificateId"], "status": "ACTIVE",
                                    "policies": ["pump-policy"]}]
    certs = {c["certificateId"]: c for c in admin(gw, token, "GET", "certificates").doc["certificates"]}
    assert certs[cert["certificateId"]]["status"] == "ACTIVE" and certs[cert["certificateId"]]["things"] == ["pump-1"]
    assert "pump-policy" in [p["policyName"] for p in admin(gw, token, "GET", "policies").doc["policies"]]
    policy = admin(gw, token, "GET", "policies/pump-policy").doc
    assert policy["policyDocument"] == document and policy["targets"] == [cert["certificateArn"]]
    page = admin(gw, token, "GET", "things?maxResults=1").doc
    assert len(page["things"]) == 1
    assert admin(gw, token, "GET", "things?maxResults=lots").status == 400

    iot.create_job(jobId="fw-2", targets=[f"{ARN}:thing/pump-1"], document=json.dumps({"op": "update"}))
    assert [j["jobId"] for j in admin(gw, token, "GET", "jobs").doc["jobs"]] == ["fw-2"]
    job = admin(gw, token, "GET", "jobs/fw-2").doc
    assert job["status"] == "IN_PROGRESS" and job["document"] == {"op": "update"}
    assert [x["thingArn"] for x in job["executions"]] == [f"{ARN}:thing/pump-1"]
    assert admin(gw, token, "GET", "jobs?status=WHATEVER").status == 400


def test_health_and_metrics(gw: GatewayThread, token: str) -> None:
    health = admin(gw, token, "GET", "health").doc
    assert health["version"] and health["uptime_s"] >= 0
    components = health["components"]
    assert components["mqtt"]["listeners"]["dev"] == gw.dev_port and components["api"]["url"] == gw.endpoint
    assert {"rules", "shadows", "jobs", "provisioning"} <= set(components) and "kinesis" in components["sinks"]
    metrics = admin(gw, token, "GET", "metrics").doc
    assert {"mqtt", "rules", "durability"} <= set(metrics)
    assert metrics["rules"]["rules_active"] == len(gw.rules.index)
    assert metrics["durability"]["fsyncs"] >= 0


# --- the router -----------------------------------------------------------------------------------------------

SEGMENT = st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=30)


@given(SEGMENT, SEGMENT)
def test_router_decodes_every_path_segment(first: str, second: str) -> None:
    async def handler(call: Any) -> None:
        return None

    router = Router()
    router.add("GET", "things/{name}", handler)
    router.add("POST", "rules/{name}/test", handler)
    _, params = router.resolve("GET", "things/" + quote(first, safe=""))
    assert params == {"name": first}
    _, params = router.resolve("POST", f"rules/{quote(second, safe='')}/test")
    assert params == {"name": second}
    with pytest.raises(MethodNotAllowed):
        router.resolve("DELETE", "things/" + quote(first, safe=""))
    with pytest.raises(NotFound):
        router.resolve("GET", f"things/{quote(first, safe='')}/{quote(second, safe='')}")

