"""The shadow service over MQTT with raw topics (paho): every response topic, every error code the MQTT
path produces, throttling, persistence across a restart and concurrent writers."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.shadow.store import DB_NAME
from tests.test_shadow_support import ShadowClient, ShadowGateway, running_gateway

P = "$aws/things/dev1/shadow"
N = "$aws/things/dev1/shadow/name/cfg"


@pytest.fixture
def gw(home: Path) -> Iterator[ShadowGateway]:
    with running_gateway(home) as g:
        yield g


@pytest.fixture
def client(gw: ShadowGateway) -> Iterator[ShadowClient]:
    c = ShadowClient(gw.dev_port, "dev1", v5=True)
    yield c
    c.close()


def test_update_publishes_delta_documents_and_accepted_in_order(client: ShadowClient) -> None:
    client.watch(P)
    client.request(f"{P}/update", {"state": {"desired": {"color": "red"}, "reported": {"color": "blue"}},
                                   "clientToken": "t1"})
    topics = [client.next() for _ in range(3)]
    assert [t for t, _ in topics] == [f"{P}/update/delta", f"{P}/update/documents", f"{P}/update/accepted"]
    delta, documents, accepted = (body for _, body in topics)
    assert delta["state"] == {"color": "red"} and delta["version"] == 1 and delta["clientToken"] == "t1"
    assert isinstance(delta["metadata"]["color"]["timestamp"], int)
    assert documents["previous"] is None and documents["current"]["version"] == 1
    assert accepted["version"] == 1 and accepted["clientToken"] == "t1"
    assert accepted["state"] == {"desired": {"color": "red"}, "reported": {"color": "blue"}}
    assert set(accepted) == {"state", "metadata", "version", "timestamp", "clientToken"}


def test_reported_update_without_delta_publishes_no_delta(client: ShadowClient) -> None:
    client.watch(P)
    client.request(f"{P}/update", {"state": {"reported": {"on": True}}})
    assert client.next()[0] == f"{P}/update/documents"
    topic, accepted = client.next()
    assert topic == f"{P}/update/accepted" and "clientToken" not in accepted


def test_get_and_delete_echo_the_token_and_version_continues_after_delete(client: ShadowClient) -> None:
    client.watch(P)
    client.request(f"{P}/get", {"clientToken": "g0"})
    rejected = client.expect(f"{P}/get/rejected")
    assert (rejected["code"], rejected["message"], rejected["clientToken"]) == (
        404, "No shadow exists with name: 'dev1'", "g0")
    for i in range(2):
        client.request(f"{P}/update", {"state": {"desired": {"n": i}, "reported": {"n": 0}}})
        client.expect(f"{P}/update/accepted")
    client.request(f"{P}/get", "")
    got = client.expect(f"{P}/get/accepted")
    assert got["version"] == 2 and got["state"]["delta"] == {"n": 1} and "clientToken" not in got
    client.request(f"{P}/delete", {"clientToken": "d1"})
    deleted = client.expect(f"{P}/delete/accepted")
    assert deleted["version"] == 2 and deleted["clientToken"] == "d1" and isinstance(deleted["timestamp"], int)
    client.request(f"{P}/delete", {"clientToken": "d2"})
    assert client.expect(f"{P}/delete/rejected")["code"] == 404
    client.request(f"{P}/update", {"state": {"reported": {"x": 1}}})
    assert client.expect(f"{P}/update/accepted")["version"] == 3


def test_named_shadows_are_separate_from_the_classic_shadow(client: ShadowClient) -> None:
    client.watch(N)
    client.request(f"{N}/update", {"state": {"reported": {"rate": 5}}, "clientToken": "n1"})
    assert client.expect(f"{N}/update/accepted")["version"] == 1
    client.request(f"{N}/get", {"clientToken": "n2"})
    assert client.expect(f"{N}/get/accepted")["state"] == {"reported": {"rate": 5}}
    client.watch(P, "get/+")
    client.request(f"{P}/get", {})
    assert client.expect(f"{P}/get/rejected")["code"] == 404
    client.request(f"{N}/delete", {})
    client.expect(f"{N}/delete/accepted")
    client.request(f"{N}/get", {"clientToken": "n3"})
    assert client.expect(f"{N}/get/rejected")["message"] == "No shadow exists with name: 'cfg'"


@pytest.mark.parametrize(("payload", "code", "token"), [
    (b"{not json", 400, None),
    (b"\xc3\x28", 415, None),
    (b'"a string"', 400, None),
    (b'{"state": {"desired": {"a": 1}}, "extra": 1, "clientToken": "x1"}', 400, "x1"),
    (b'{"state": {"desired": {"a": 1}}, "version": "7", "clientToken": "x2"}', 400, "x2"),
    (b'{"state": {"desired": {"a": 1}}, "clientToken": 12}', 400, None),
    (b'{"state": {"reported": {"a": 1}}, "version": 99, "clientToken": "x3"}', 409, "x3"),
    (b'{"state": {"reported": {"a": "' + b"z" * 9000 + b'"}}, "clientToken": "x4"}', 413, "x4"),
])
def test_bad_updates_are_rejected_and_change_nothing(client: ShadowClient, payload: bytes, code: int,
                                                     token: str | None) -> None:
    client.watch(P)
    client.request(f"{P}/update", {"state": {"reported": {"a": 0}}})
    client.expect(f"{P}/update/accepted")
    client.request(f"{P}/update", payload)
    rejected = client.expect(f"{P}/update/rejected")
    assert rejected["code"] == code and rejected.get("clientToken") == token and isinstance(rejected["timestamp"], int)
    client.request(f"{P}/get", {})
    got = client.expect(f"{P}/get/accepted")
    assert got["version"] == 1 and got["state"] == {"reported": {"a": 0}}


def test_version_conflict_then_retry_with_the_current_version(client: ShadowClient) -> None:
    client.watch(P)
    client.request(f"{P}/update", {"state": {"reported": {"a": 1}}})
    client.expect(f"{P}/update/accepted")
    client.request(f"{P}/update", {"state": {"reported": {"a": 2}}, "version": 0})
    assert client.expect(f"{P}/update/rejected")["message"] == "Version conflict"
    client.request(f"{P}/update", {"state": {"reported": {"a": 2}}, "version": 1})
    assert client.expect(f"{P}/update/accepted")["version"] == 2


def test_more_than_ten_in_flight_requests_on_one_connection_get_429(client: ShadowClient) -> None:
    client.watch(P)
    total = 60
    for i in range(total):
        client.publish(f"{P}/update", json.dumps({"state": {"reported": {"i": i}}, "clientToken": str(i)}), 0,
                       wait=False)
    outcomes: dict[str, int] = {}
    versions = []
    while len(outcomes) < total:
        topic, body = client.next()
        if topic.endswith("/accepted"):
            outcomes[body["clientToken"]] = 200
            versions.append(body["version"])
        elif topic.endswith("/rejected"):
            assert (body["code"], body["message"]) == (429, "Too Many Requests")
            outcomes[body["clientToken"]] = 429
    accepted = [t for t, c in outcomes.items() if c == 200]
    assert len(accepted) >= 10 and 429 in outcomes.values()
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    client.request(f"{P}/get", {})
    assert client.expect(f"{P}/get/accepted")["version"] == len(accepted)


def test_requests_for_another_things_shadow_are_refused_by_policy(home: Path, tmp_path: Path) -> None:
    from gateway.identity.registry import Registry
    from gateway.identity.tls import client_context
    from tests.mqtt_helpers import broker_config

    registry = Registry.open(broker_config(home))
    try:
        files = registry.provision_thing("dev1").write(tmp_path / "dev1")
        registry.provision_thing("dev2")
        with running_gateway(home, registry) as g:
            tls = client_context(files["ca"], files["certificate"], files["private_key"], ())
            c = ShadowClient(g.mqtts_port, "dev1", v5=True, tls=tls, host="localhost")
            try:
                assert c.subscribe("$aws/things/dev2/shadow/update/+", 1)[0] == 0x87
                c.watch(P, "update/+")
                c.pubacks.queue.clear()
                c.publish("$aws/things/dev2/shadow/update", json.dumps({"state": {"desired": {"x": 1}}}), 1,
                          wait=False)
                assert c.pubacks.get(timeout=5)[1] == 0x87
                c.request(f"{P}/update", {"state": {"reported": {"ok": 1}}})
                assert c.expect(f"{P}/update/accepted")["version"] == 1
            finally:
                c.close()
            assert g.bt.call(_exists(g, "dev2")) is False
    finally:
        registry.close()


async def _exists(g: ShadowGateway, thing: str) -> bool:
    from gateway.shadow.topics import ShadowKey

    assert g.shadows is not None
    record = g.shadows.store.get(ShadowKey(thing))
    return record is not None and record.exists


def test_shadows_survive_a_restart(home: Path) -> None:
    with running_gateway(home) as g:
        c = ShadowClient(g.dev_port, "dev1", v5=True)
        c.watch(P)
        c.watch(N, "update/+", "get/+")
        c.request(f"{P}/update", {"state": {"desired": {"a": 1}, "reported": {"a": 0}}})
        c.expect(f"{P}/update/accepted")
        c.request(f"{N}/update", {"state": {"reported": {"b": 2}}})
        c.expect(f"{N}/update/accepted")
        c.request(f"{P}/delete", {})
        c.expect(f"{P}/delete/accepted")
        c.close()
        g.restart_shadows()
        c = ShadowClient(g.dev_port, "dev1b", v5=True)
        c.watch(P)
        c.watch(N, "get/+")
        c.request(f"{N}/get", {})
        assert c.expect(f"{N}/get/accepted")["state"] == {"reported": {"b": 2}}
        c.request(f"{P}/update", {"state": {"reported": {"z": 1}}})
        assert c.expect(f"{P}/update/accepted")["version"] == 2, "the deleted shadow's version survives too"
        c.close()
    with running_gateway(home) as g:
        c = ShadowClient(g.dev_port, "dev1c", v5=True)
        c.watch(P, "get/+")
        c.request(f"{P}/get", {})
        assert c.expect(f"{P}/get/accepted")["state"] == {"reported": {"z": 1}}
        c.close()


def test_concurrent_writers_with_optimistic_locking(gw: ShadowGateway) -> None:
    """Two clients race read-modify-write cycles on one counter; version conflicts make them retry, and no
    increment is lost."""
    setup = ShadowClient(gw.dev_port, "setup", v5=True)
    setup.watch(P, "update/+")
    setup.request(f"{P}/update", {"state": {"reported": {"count": 0}}})
    setup.expect(f"{P}/update/accepted")
    setup.close()
    rounds = 15
    conflicts = [0, 0]

    def worker(index: int) -> None:
        c = ShadowClient(gw.dev_port, f"writer{index}", v5=True)
        c.watch(P)
        try:
            done = 0
            while done < rounds:
                token = f"w{index}-{done}-{conflicts[index]}"
                c.request(f"{P}/get", {"clientToken": token})
                got = _response(c, token)
                body = {"state": {"reported": {"count": got["state"]["reported"]["count"] + 1}},
                        "version": got["version"], "clientToken": token + "u"}
                c.request(f"{P}/update", body)
                outcome = _response(c, token + "u")
                if outcome.get("code") == 409:
                    conflicts[index] += 1
                else:
                    done += 1
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    final = ShadowClient(gw.dev_port, "reader", v5=True)
    final.watch(P, "get/+")
    final.request(f"{P}/get", {})
    got = final.expect(f"{P}/get/accepted")
    final.close()
    assert got["state"]["reported"]["count"] == 2 * rounds
    assert got["version"] == 1 + 2 * rounds


def _response(c: ShadowClient, token: str) -> dict:
    """The accepted or rejected response carrying `token` (other clients' responses are skipped)."""
    while True:
        topic, body = c.next()
        if body.get("clientToken") == token and topic.rsplit("/", 1)[-1] in ("accepted", "rejected"):
            return body


def test_accepted_is_published_only_once_the_update_is_on_disk(gw: ShadowGateway) -> None:
    """Every `/update/accepted` a device sees is already committed: another connection to shadows.db, opened
    the moment the response arrives, reads that version (or a later one)."""
    clients = [ShadowClient(gw.dev_port, f"dev{i}", v5=True) for i in range(4)]
    try:
        for i, c in enumerate(clients):
            c.watch(f"$aws/things/dev{i}/shadow", "update/+")
        rounds = 10
        for seq in range(rounds):
            for i, c in enumerate(clients):
                c.publish(f"$aws/things/dev{i}/shadow/update",
                          json.dumps({"state": {"reported": {"seq": seq}}, "clientToken": f"{i}-{seq}"}), 1,
                          wait=False)
        db = sqlite3.connect(f"file:{Path(gw.config.home) / DB_NAME}?mode=ro", uri=True)
        try:
            for i, c in enumerate(clients):
                for _ in range(rounds):
                    accepted = c.expect(f"$aws/things/dev{i}/shadow/update/accepted")
                    row = db.execute("SELECT version FROM shadows WHERE thing = ? AND name = ''",
                                     (f"dev{i}",)).fetchone()
                    assert row is not None and row[0] >= accepted["version"], (row, accepted)
        finally:
            db.close()
    finally:
        for c in clients:
            c.close()


def test_a_failed_commit_rejects_every_update_it_carried_with_500(gw: ShadowGateway, client: ShadowClient) -> None:
    client.watch(P, "update/+", "get/+")
    client.request(f"{P}/update", {"state": {"reported": {"a": 1}}})
    assert client.expect(f"{P}/update/accepted")["version"] == 1
    path = Path(gw.config.home) / DB_NAME
    with sqlite3.connect(path) as other:  # the table vanishes under the store: its commits fail
        other.execute("ALTER TABLE shadows RENAME TO moved")
    tokens = [f"f{i}" for i in range(3)]
    for token in tokens:
        client.publish(f"{P}/update", json.dumps({"state": {"reported": {"a": token}}, "clientToken": token}), 1,
                       wait=False)
    rejected = [client.next() for _ in tokens]
    assert [(t, b["code"], b["message"]) for t, b in rejected] == [
        (f"{P}/update/rejected", 500, "Internal service failure")] * 3
    assert sorted(b["clientToken"] for _, b in rejected) == tokens
    with sqlite3.connect(path) as other:
        other.execute("ALTER TABLE moved RENAME TO shadows")
    client.request(f"{P}/get", {})
    got = client.expect(f"{P}/get/accepted")
    assert got["version"] == 1 and got["state"] == {"reported": {"a": 1}}, "nothing uncommitted stays visible"
    client.request(f"{P}/update", {"state": {"reported": {"a": 2}}})
    assert client.expect(f"{P}/update/accepted")["version"] == 2
