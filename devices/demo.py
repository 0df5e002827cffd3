"""`edgeloop demo`: a gateway with embedded defaults, a few provisioned things, devices over mutual TLS.

Everything runs on loopback with free ports in a fresh data directory (or `--home`), so the demo never
disturbs a gateway that is already running. Each step prints what it shows.
"""

from __future__ import annotations

import base64
import json
import math
import queue
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import click
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgeloop.cli import AppContext
from edgeloop.config import Config
from gateway.admin.auth import token_path
from gateway.app import GatewayThread
from gateway.awsapi.client import AwsClient
from gateway.identity.registry import DeviceIdentity, Registry

SENSORS = ("sensor-1", "sensor-2", "sensor-3")
READINGS_PER_SENSOR = 5
TIMEOUT = 10.0

# The dashboard is a thing too, with a policy that lets it watch every thing's telemetry.
DASHBOARD_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/dashboard"},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/things/+/telemetry"},
        {"Effect": "Allow", "Action": "iot:Receive", "Resource": "arn:aws:iot:*:*:topic/things/*/telemetry"},
    ],
}


class DemoGateway(GatewayThread):
    """The demo's gateway, with the two handles the demo steps need."""

    @property
    def api_client(self) -> AwsClient:
        """A signed client for the gateway's AWS-compatible API (what boto3 would be)."""
        assert self.gateway.api is not None
        api = self.config.api
        return AwsClient(self.gateway.api.url, api.access_key, api.secret_key, self.config.aws.region)

    @property
    def mqtts_port(self) -> int:
        assert self.gateway.mqtt is not None
        return self.gateway.mqtt.ports["mqtts"]


class Device:
    """A paho MQTT 5 client with its own certificate, reporting what it receives through a queue."""

    def __init__(self, identity: DeviceIdentity, folder: Path, port: int) -> None:
        self.name = identity.thing_name
        self.received: queue.Queue[tuple[str, bytes | bytearray]] = queue.Queue()
        self.acks: queue.Queue[tuple[int, ReasonCode]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.name, protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(folder / "root-CA.pem"), certfile=str(folder / f"{self.name}.cert.pem"),
                            keyfile=str(folder / f"{self.name}.private.key"))
        self.client.on_message = lambda _c, _u, msg: self.received.put((msg.topic, msg.payload))
        self.client.on_publish = lambda _c, _u, mid, rc, _p: self.acks.put((mid, rc))
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.subacks.put(codes)
        connected = threading.Event()
        self.client.on_connect = lambda *_a: connected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not connected.wait(TIMEOUT):
            raise click.ClickException(f"{self.name} could not connect over mutual TLS")

    def next_message(self, topic: str) -> dict[str, Any]:
        """The next message received on `topic` (others received meanwhile are skipped), as JSON."""
        while True:
            received, payload = self.received.get(timeout=TIMEOUT)
            if received == topic:
                return json.loads(payload)

    def publish(self, topic: str, payload: dict[str, Any]) -> ReasonCode:
        """Publish at QoS 1 and return the broker's PUBACK reason code."""
        info = self.client.publish(topic, json.dumps(payload), qos=1, properties=Properties(3))
        mid, rc = self.acks.get(timeout=TIMEOUT)
        assert mid == info.mid
        return rc

    def subscribe(self, topic_filter: str) -> list[ReasonCode]:
        """Subscribe at QoS 1 and return the SUBACK reason codes."""
        self.client.subscribe(topic_filter, qos=1)
        return self.subacks.get(timeout=TIMEOUT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def provision(config: Config, devices_dir: Path) -> dict[str, DeviceIdentity]:
    with Registry.open(config) as registry:
        registry.policies.create("dashboard-policy", DASHBOARD_POLICY)
        identities = registry.provision_fleet(SENSORS)
        identities.append(registry.provision_thing("dashboard", policies=("dashboard-policy",)))
    for identity in identities:
        identity.write(devices_dir / identity.thing_name)
    return {identity.thing_name: identity for identity in identities}


def step(text: str) -> None:
    click.secho(f"\n== {text}", bold=True)


def shadow_step(demo: DemoGateway, device: Device) -> None:
    """The device reports its state, an operator sets a desired state over HTTP, the device converges."""
    step(f"Device shadow: {device.name} reports, an operator changes the desired state, the device converges")
    prefix = f"$aws/things/{device.name}/shadow"
    for suffix in ("update/accepted", "update/delta"):
        device.subscribe(f"{prefix}/{suffix}")
    device.publish(f"{prefix}/update", {"state": {"reported": {"fan": "off", "interval": 10}}})
    accepted = device.next_message(f"{prefix}/update/accepted")
    click.echo(f"  {device.name} reported  {json.dumps(accepted['state'])} -> version {accepted['version']}")

    client = demo.api_client
    body = json.dumps({"state": {"desired": {"fan": "on", "interval": 5}}}).encode()
    status, _, _ = client.request("iotdata", "POST", f"/things/{device.name}/shadow", body=body)
    click.echo(f"  operator  UpdateThingShadow desired fan=on interval=5 -> HTTP {status}")
    delta = device.next_message(f"{prefix}/update/delta")
    click.echo(f"  {device.name} <- delta {json.dumps(delta['state'])} (version {delta['version']})")
    device.publish(f"{prefix}/update", {"state": {"reported": delta["state"]}})
    device.next_message(f"{prefix}/update/accepted")
    _, _, raw = client.request("iotdata", "GET", f"/things/{device.name}/shadow")
    state = json.loads(raw)["state"]
    converged = "delta" not in state
    click.echo(f"  shadow now reported={json.dumps(state['reported'])} converged={converged}")


def run_demo(home: Path) -> None:
    config = Config(data_dir=str(home))
    for section, key in (("mqtt", "port"), ("mqtt", "https_port"), ("api", "port")):
        setattr(getattr(config, section), key, 0)
    config.mqtt.host = "127.0.0.1"

    step(f"Provisioning things in {home}")
    identities = provision(config, home / "devices")
    for name, identity in identities.items():
        click.echo(f"  {name:<10} certificate {identity.certificate_id[:16]}…  -> {home / 'devices' / name}")

    with DemoGateway(config) as demo:
        step("Gateway running")
        for line in demo.gateway.describe():
            click.echo(f"  {line}")

        step("Devices connect over mutual TLS; the dashboard watches things/+/telemetry")
        devices = {name: Device(identities[name], home / "devices" / name, demo.mqtts_port) for name in identities}
        dashboard = devices.pop("dashboard")
        dashboard.subscribe("things/+/telemetry")

        sent = 0
        for i in range(READINGS_PER_SENSOR):
            for n, (name, device) in enumerate(devices.items()):
                reading = {"seq": i, "temperature": round(21 + 3 * math.sin(i / 2 + n), 2), "battery": 100 - i}
                device.publish(f"things/{name}/telemetry", reading)
                sent += 1
        for _ in range(sent):
            topic, payload = dashboard.received.get(timeout=TIMEOUT)
            click.echo(f"  dashboard <- {topic:<26} {payload.decode()}")

        step("Policies at work: sensor-1 tries to publish as sensor-2")
        rc = devices["sensor-1"].publish("things/sensor-2/telemetry", {"spoofed": True})
        click.echo(f"  PUBACK reason: {rc} (0x{rc.value:02X}) - the default thing policy only allows its own topics")

        shadow_step(demo, devices["sensor-1"])
        rules_step(demo, devices)  # rules engine: telemetry -> Kinesis, alerts -> SQS, Firehose -> S3

        for device in [*devices.values(), dashboard]:
            device.close()

    step("Summary")
    click.echo(f"  {len(devices)} devices, {sent} readings delivered to the dashboard, 1 spoofing attempt refused")


@click.command()
@click.option("--home", type=click.Path(file_okay=False, path_type=Path),
              help="Data directory for the demo (default: a fresh temporary one).")
@click.pass_obj
def demo(app: AppContext, home: Path | None) -> None:
    """Run the demo: a gateway, provisioned things and devices talking over mutual TLS."""
    if home is not None:
        run_demo(home)
        click.echo(f"  everything the demo made (CA, registry, device keys, sinks) is kept in {home}")
        return
    with tempfile.TemporaryDirectory(prefix="edgeloop-demo-") as tmp:
        run_demo(Path(tmp))
    click.echo("  the demo's data directory was temporary; `edgeloop demo --home DIR` keeps it")


# -- rules engine step: rules route device telemetry into the emulated Kinesis, SQS and Firehose -> S3 --------

RULES_ROLE = "arn:aws:iam::000000000000:role/edgeloop-demo-rules"


def demo_rules(queue_url: str) -> dict[str, dict[str, Any]]:
    """The demo's topic rules (AWS topicRulePayload JSON) by name."""
    return {
        "telemetry_to_kinesis": {
            "sql": "SELECT topic(2) AS device, temperature, battery FROM 'things/+/telemetry'",
            "actions": [{"kinesis": {"roleArn": RULES_ROLE, "streamName": "telemetry",
                                     "partitionKey": "${topic(2)}"}}],
        },
        "hot_alerts": {
            "sql": "SELECT topic(2) AS device, temperature FROM 'things/+/telemetry' WHERE temperature > 23",
            "actions": [{"sqs": {"roleArn": RULES_ROLE, "queueUrl": queue_url}}],
        },
        "archive": {
            "sql": "SELECT * FROM 'things/+/telemetry'",
            "actions": [{"firehose": {"roleArn": RULES_ROLE, "deliveryStreamName": "archive", "separator": "\n"}}],
        },
    }


def _create_rule_sinks(client: AwsClient) -> str:
    """The sinks the demo rules write to; returns the alert queue's URL."""
    client.json("kinesis", "Kinesis_20131202.CreateStream", {"StreamName": "telemetry", "ShardCount": 1})
    queue_url = client.json("sqs", "AmazonSQS.CreateQueue", {"QueueName": "alerts"},
                            "application/x-amz-json-1.0")["QueueUrl"]
    client.request("s3", "PUT", "/telemetry-archive")
    client.json("firehose", "Firehose_20150804.CreateDeliveryStream", {
        "DeliveryStreamName": "archive",
        "ExtendedS3DestinationConfiguration": {"BucketARN": "arn:aws:s3:::telemetry-archive", "RoleARN": RULES_ROLE,
                                               "Prefix": "firehose/"}})
    return str(queue_url)


def _read_kinesis(client: AwsClient, stream: str) -> list[dict[str, Any]]:
    out = []
    for shard in client.json("kinesis", "Kinesis_20131202.ListShards", {"StreamName": stream})["Shards"]:
        iterator = client.json("kinesis", "Kinesis_20131202.GetShardIterator", {
            "StreamName": stream, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
        page = client.json("kinesis", "Kinesis_20131202.GetRecords", {"ShardIterator": iterator, "Limit": 10000})
        out += [json.loads(base64.b64decode(r["Data"])) for r in page["Records"]]
    return out


def _read_s3_lines(client: AwsClient, bucket: str, prefix: str) -> list[bytes]:
    _, _, listing = client.request("s3", "GET", f"/{bucket}", query={"list-type": "2", "prefix": prefix})
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    keys = [k.text for k in ElementTree.fromstring(listing).iterfind(".//s3:Contents/s3:Key", ns) if k.text]
    return [line for key in keys for line in client.request("s3", "GET", f"/{bucket}/{key}")[2].splitlines()]


def rules_step(demo: DemoGateway, devices: dict[str, Device]) -> None:
    """Rules filter and reshape telemetry into Kinesis, send alerts to SQS and batch everything to S3."""
    step("Rules engine: telemetry -> Kinesis, hot readings -> SQS alerts, everything -> Firehose -> S3")
    client = demo.api_client
    queue_url = _create_rule_sinks(client)
    for name, payload in demo_rules(queue_url).items():
        client.request("iot", "POST", f"/rules/{name}", body=json.dumps(payload).encode(),
                       headers={"Content-Type": "application/json"})
        click.echo(f"  rule {name:<21} {payload['sql']}")
    sent = 0
    for i in range(READINGS_PER_SENSOR):
        for n, (name, device) in enumerate(devices.items()):
            device.publish(f"things/{name}/telemetry", {"seq": i, "temperature": round(22 + 2 * math.cos(i + n), 2),
                                                        "battery": 90 - i})
            sent += 1
    assert demo.gateway.rules is not None
    demo.call(demo.gateway.rules.dispatcher.drain(TIMEOUT))
    demo.call(demo.gateway.services["firehose"].engine.flush("archive"))

    records = _read_kinesis(client, "telemetry")
    click.echo(f"  kinesis  telemetry: {len(records)} records, e.g. {json.dumps(records[0]) if records else '-'}")
    alerts = client.json("sqs", "AmazonSQS.ReceiveMessage", {"QueueUrl": queue_url, "MaxNumberOfMessages": 10},
                         "application/x-amz-json-1.0").get("Messages", [])
    for message in alerts:
        click.echo(f"  sqs      alerts <- {message['Body']}")
    lines = _read_s3_lines(client, "telemetry-archive", "firehose/")
    click.echo(f"  s3       telemetry-archive/firehose/: {len(lines)} archived lines")
    metrics = demo.gateway.rules.metrics()
    click.echo(f"  rules: {sent} readings published, {metrics['matched']} rule matches, "
               f"{metrics['dispatched']} actions dispatched, {metrics['failed']} failed")
    admin_step(demo)


def admin_step(demo: DemoGateway) -> None:
    """The admin API: per-rule counters over HTTP, with the bearer token the gateway keeps in its data folder."""
    token = token_path(demo.gateway.home).read_text().strip()
    assert demo.gateway.api is not None
    request = urllib.request.Request(f"{demo.gateway.api.url}/_edgeloop/rules",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        listing = json.loads(response.read())
    click.echo(f"  admin API  GET /_edgeloop/rules (token in {token_path(demo.gateway.home).name}):")
    for rule in listing["rules"]:
        counters = rule["counters"]
        dispatched = sum(action.get("dispatched", 0) for action in counters.get("actions", {}).values())
        click.echo(f"    {rule['ruleName']:<21} matched {counters.get('matched', 0):>3}  dispatched {dispatched:>3}")

