"""The registry through an unmodified boto3 `iot` client (and the aws CLI) on the AWS-compatible API."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from edgeloop.config import Config
from gateway.identity.iot_api import create_iot_service
from gateway.storage.durable import GroupSync
from tests.awsapi_helpers import ApiHandle, boto3_client, running_api

pytestmark = pytest.mark.interop

CONNECT_AS_THING = "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": CONNECT_AS_THING}]})


async def make_services(config: Config, sync: GroupSync) -> list[Any]:
    return [await create_iot_service(config.home, config, sync, {})]


@pytest.fixture
def api(home: Path) -> Iterator[ApiHandle]:
    with running_api(home, make_services) as handle:
        yield handle


@pytest.fixture
def iot(api: ApiHandle) -> Any:
    return boto3_client(api, "iot")


def error_code(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_things_types_and_groups(iot: Any) -> None:
    iot.create_thing_type(thingTypeName="meter", thingTypeProperties={"thingTypeDescription": "power meter"})
    created = iot.create_thing(thingName="m:1", thingTypeName="meter", attributePayload={"attributes": {"a": "1"}})
    assert created["thingArn"].endswith(":thing/m:1")
    iot.update_thing(thingName="m:1", attributePayload={"attributes": {"b": "2"}, "merge": True})
    thing = iot.describe_thing(thingName="m:1")
    assert thing["attributes"] == {"a": "1", "b": "2"} and thing["version"] == 2
    assert thing["thingTypeName"] == "meter"
    assert [t["thingName"] for t in iot.list_things(thingTypeName="meter")["things"]] == ["m:1"]
    assert error_code(lambda: iot.describe_thing(thingName="nope")) == ("ResourceNotFoundException", 404)
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException):
        iot.create_thing(thingName="m:1")
    iot.create_thing_group(thingGroupName="site")
    iot.create_thing_group(thingGroupName="floor", parentGroupName="site")
    iot.add_thing_to_thing_group(thingGroupName="floor", thingName="m:1")
    assert iot.list_things_in_thing_group(thingGroupName="site", recursive=True)["things"] == ["m:1"]
    assert iot.list_thing_groups_for_thing(thingName="m:1")["thingGroups"][0]["groupName"] == "floor"
    group = iot.describe_thing_group(thingGroupName="floor")
    assert group["thingGroupMetadata"]["parentGroupName"] == "site"
    iot.deprecate_thing_type(thingTypeName="meter")
    assert iot.describe_thing_type(thingTypeName="meter")["thingTypeMetadata"]["deprecated"] is True
    assert error_code(lambda: iot.delete_thing_type(thingTypeName="meter"))[0] == "InvalidRequestException"


def test_certificates_and_policies(iot: Any) -> None:
    cert = iot.create_keys_and_certificate(setAsActive=True)
    assert "BEGIN PRIVATE KEY" in cert["keyPair"]["PrivateKey"]
    description = iot.describe_certificate(certificateId=cert["certificateId"])["certificateDescription"]
    assert description["status"] == "ACTIVE"
    assert description["validity"]["notAfter"] > description["creationDate"]
    iot.create_thing(thingName="dev-1")
    iot.attach_thing_principal(thingName="dev-1", principal=cert["certificateArn"])
    assert iot.list_thing_principals(thingName="dev-1")["principals"] == [cert["certificateArn"]]
    assert iot.list_principal_things(principal=cert["certificateArn"])["things"] == ["dev-1"]
    iot.create_policy(policyName="connect", policyDocument=POLICY)
    iot.attach_policy(policyName="connect", target=cert["certificateArn"])
    attached = iot.list_attached_policies(target=cert["certificateArn"])["policies"]
    assert [p["policyName"] for p in attached] == ["connect"]
    assert iot.list_targets_for_policy(policyName="connect")["targets"] == [cert["certificateArn"]]
    iot.create_policy_version(policyName="connect", policyDocument=POLICY, setAsDefault=True)
    assert iot.get_policy(policyName="connect")["defaultVersionId"] == "2"
    assert [v["versionId"] for v in iot.list_policy_versions(policyName="connect")["policyVersions"]] == ["2", "1"]
    assert error_code(lambda: iot.create_policy(policyName="bad", policyDocument="{}")) == (
        "MalformedPolicyException", 400)
    assert error_code(lambda: iot.delete_certificate(certificateId=cert["certificateId"])) == (
        "CertificateStateException", 406)
    iot.update_certificate(certificateId=cert["certificateId"], newStatus="REVOKED")
    iot.detach_thing_principal(thingName="dev-1", principal=cert["certificateArn"])
    iot.delete_certificate(certificateId=cert["certificateId"], forceDelete=True)
    assert iot.list_certificates()["certificates"] == []
    assert iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"] == "localhost"


def test_aws_cli_lists_things(api: ApiHandle, iot: Any, tmp_path: Path) -> None:
    iot.create_thing(thingName="cli-thing")
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "HOME": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "aws"), "iot", "list-things", "--endpoint-url", api.endpoint],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert [t["thingName"] for t in json.loads(result.stdout)["things"]] == ["cli-thing"]
