"""Helpers for the dispatcher tests: a whole gateway on a background loop, boto3 clients, paho publishers."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeloop.config import Config, load_config
from gateway.app import Gateway

TIMEOUT = 20.0
ROLE = "arn:aws:iam::000000000000:role/rules"


def gateway_config(home: Path, **overrides: Any) -> Config:
    """Every listener on an ephemeral port, plain MQTT on; overrides are dotted keys."""
    base = {"data_dir": str(home), "mqtt.dev": True, "mqtt.dev_port": 0, "mqtt.port": 0, "mqtt.https_port": 0,
            "api.port": 0, "mqtt.sys_interval_secs": 0.0, "rules.reload_interval_secs": 0.2}
    return load_config(overrides={**base, **overrides})


class GatewayThread:
    """A Gateway running on its own event loop in a daemon thread."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.gateway = Gateway(config)
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway", daemon=True)

    def call(self, coro: Any, timeout: float = TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def endpoint(self) -> str:
        assert self.gateway.api is not None
        return self.gateway.api.url

    @property
    def dev_port(self) -> int:
        assert self.gateway.mqtt is not None
        return self.gateway.mqtt.ports["dev"]

    @property
    def rules(self) -> Any:
        assert self.gateway.rules is not None
        return self.gateway.rules

    def client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config as BotoConfig

        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.config.api.access_key,
                            aws_secret_access_key=self.config.api.secret_key,
                            config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))

    def drained(self, timeout: float = TIMEOUT) -> bool:
        """Wait until the dispatcher finished everything queued."""
        return bool(self.call(self.rules.dispatcher.drain(timeout), timeout + 5))


@contextlib.contextmanager
def running_gateway(home: Path, **overrides: Any) -> Iterator[GatewayThread]:
    handle = GatewayThread(gateway_config(home, **overrides))
    handle.thread.start()
    try:
        handle.call(handle.gateway.start(), 60)
        yield handle
    finally:
        with contextlib.suppress(Exception):
            handle.call(handle.gateway.stop(), 60)
        handle.loop.call_soon_threadsafe(handle.loop.stop)
        handle.thread.join(10)
        handle.loop.close()


class Publisher:
    """A paho client that publishes and counts acknowledgements (PUBACK for QoS 1)."""

    def __init__(self, port: int, client_id: str, v5: bool = False) -> None:
        protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        self.client.max_inflight_messages_set(100)
        self.acked: set[int] = set()
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self.client.on_connect = lambda *a: self._connected.set()
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._connected.wait(TIMEOUT):
            raise TimeoutError("no CONNACK")

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self._cond:
            self.acked.add(mid)
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, properties: Any = None) -> int:
        info = self.client.publish(topic, payload, qos, properties=properties)
        return info.mid

    def wait_acked(self, mids: list[int], timeout: float = TIMEOUT) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.acked.issuperset(mids), timeout):
                raise TimeoutError(f"{len(set(mids) - self.acked)} of {len(mids)} publishes not acknowledged")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(predicate: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition") -> Any:
    """Poll an external system (boto3 reads) until `predicate` returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def read_stream(kinesis: Any, stream: str) -> list[bytes]:
    """Every record of every shard of a Kinesis stream, via boto3."""
    out: list[bytes] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = kinesis.get_records(ShardIterator=it, Limit=10000)
            out += [r["Data"] for r in page["Records"]]
            if not page["Records"]:
                break
            it = page.get("NextShardIterator")
    return out


def rule_payload(sql: str, *actions: dict[str, Any], error_action: dict[str, Any] | None = None,
                 **extra: Any) -> dict[str, Any]:
    """A boto3 topicRulePayload."""
    payload: dict[str, Any] = {"sql": sql, "actions": list(actions), **extra}
    if error_action is not None:
        payload["errorAction"] = error_action
    return payload
