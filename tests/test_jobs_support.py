"""Shared fixtures for the jobs and provisioning tests: the whole gateway (`Gateway(config)`) on its own
event-loop thread with ephemeral ports, boto3 clients for it, and paho clients that wait on queues."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeloop.config import Config
from gateway.app import GatewayThread as AppGatewayThread
from tests.awsiot_helpers import SDK_TIMEOUT, open_stream, rr_options, sdk_mqtt5  # noqa: F401 (re-exported)
from tests.mqtt_helpers import TIMEOUT, Client


class GatewayThread(AppGatewayThread):
    """The app's background gateway with the handles these tests use."""

    def start(self) -> GatewayThread:
        return self.__enter__()

    def stop(self) -> None:
        self.__exit__()

    def port(self, name: str) -> int:
        assert self.gateway.mqtt is not None
        return self.gateway.mqtt.ports[name]

    @property
    def endpoint(self) -> str:
        assert self.gateway.api is not None
        return self.gateway.api.url

    def client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config as BotoConfig

        return boto3.client(
            service, endpoint_url=self.endpoint, region_name=self.config.aws.region,
            aws_access_key_id=self.config.api.access_key, aws_secret_access_key=self.config.api.secret_key,
            config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=15,
                              s3={"addressing_style": "path"}),
        )


def gateway_config(home: Path, **sections: dict[str, Any]) -> Config:
    """Ephemeral ports, dev listener on, no fsync; `sections` override config sections (e.g. jobs={...})."""
    config = Config(data_dir=str(home))
    config.durability.fsync = "never"
    config.mqtt = dataclasses.replace(config.mqtt, dev=True, dev_port=0, port=0, https_port=0, host="127.0.0.1",
                                      sys_interval_secs=0.0)
    config.api.port = 0
    config.pki.include_host_addresses = False
    for name, values in sections.items():
        setattr(config, name, dataclasses.replace(getattr(config, name), **values))
    return config


@contextlib.contextmanager
def running_gateway(home: Path, **sections: dict[str, Any]) -> Iterator[GatewayThread]:
    gw = GatewayThread(gateway_config(home, **sections))
    try:
        yield gw.start()
    finally:
        gw.stop()


class JsonClient(Client):
    """A paho client that sends JSON requests and waits for JSON messages by topic."""

    def request(self, topic: str, body: dict[str, Any] | bytes | str, qos: int = 1) -> None:
        payload = body if isinstance(body, bytes | str) else json.dumps(body)
        self.publish(topic, payload, qos)

    def expect(self, topic: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next message on `topic`. Messages on other topics are kept for later `expect` calls, since
        answers and notifications about one change may arrive in any order."""
        stash: list[Any] = self.__dict__.setdefault("stash", [])
        for i, message in enumerate(stash):
            if message.topic == topic:
                return json.loads(stash.pop(i).payload)  # type: ignore[no-any-return]
        while True:
            message = self.get(timeout)
            if message.topic == topic:
                return json.loads(message.payload)  # type: ignore[no-any-return]
            stash.append(message)




CLAIM_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": [
        "arn:aws:iot:*:*:topic/$aws/certificates/create/*",
        "arn:aws:iot:*:*:topic/$aws/certificates/create-from-csr/*",
        "arn:aws:iot:*:*:topic/$aws/provisioning-templates/*/provision/*"]},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": [
        "arn:aws:iot:*:*:topicfilter/$aws/certificates/create/*",
        "arn:aws:iot:*:*:topicfilter/$aws/certificates/create-from-csr/*",
        "arn:aws:iot:*:*:topicfilter/$aws/provisioning-templates/*/provision/*"]},
]})

FLEET_TEMPLATE = json.dumps({
    "Parameters": {"SerialNumber": {"Type": "String"}, "Site": {"Type": "String", "Default": "lab"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {
            "ThingName": {"Fn::Join": ["", ["sensor-", {"Ref": "SerialNumber"}]]},
            "AttributePayload": {"site": {"Ref": "Site"}}}},
        "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {
            "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "Active"}},
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "edgeloop-thing"}},
    },
    "DeviceConfiguration": {"site": {"Fn::Sub": "site-${Site}"}},
})


def claim_identity(config: Config, directory: Path) -> dict[str, Path]:
    """A claim certificate (ACTIVE, no thing) with a policy that allows only the provisioning topics; also
    makes sure the default thing policy the fleet template attaches exists."""
    from gateway.identity.registry import DEFAULT_THING_POLICY, Registry
    from gateway.storage.durable import atomic_write

    with Registry.open(config) as registry:
        registry.ensure_builtin_policy(DEFAULT_THING_POLICY)
        registry.policies.create("claim", CLAIM_POLICY)
        cert = registry.certs.create_keys_and_certificate(set_as_active=True, common_name="claim")
        registry.policies.attach("claim", cert["certificateArn"])
        ca = registry.ca.certificate_pem
    directory.mkdir(parents=True, exist_ok=True)
    files = {"certificate": directory / "claim.cert.pem", "private_key": directory / "claim.private.key",
             "ca": directory / "root-CA.pem"}
    for name, text in (("certificate", cert["certificatePem"]), ("private_key", cert["keyPair"]["PrivateKey"]),
                       ("ca", ca)):
        atomic_write(files[name], text.encode(), mode=0o600, durable=False)
    return files


def create_fleet_template(gw: GatewayThread, name: str = "fleet", body: str = FLEET_TEMPLATE,
                          enabled: bool = True) -> None:
    gw.client("iot").create_provisioning_template(
        templateName=name, templateBody=body, enabled=enabled,
        provisioningRoleArn="arn:aws:iam::000000000000:role/provisioning")
