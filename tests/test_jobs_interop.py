"""The AWS IoT Device SDK's jobs clients against the gateway over mutual TLS with certificates from our PKI:
`IotJobsClientV2` (MQTT 5, request/response by clientToken, notify-next stream) and the classic
`IotJobsClient` (MQTT 3.1.1); jobs created with boto3 `iot`."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from gateway.identity.registry import Registry
from tests.test_jobs_support import SDK_TIMEOUT, GatewayThread, open_stream, rr_options, running_gateway, sdk_mqtt5

pytestmark = pytest.mark.interop
ARN = "arn:aws:iot:us-east-1:000000000000"


@pytest.fixture
def gw(home: Path) -> Iterator[GatewayThread]:
    with running_gateway(home) as g:
        yield g


@pytest.fixture
def files(gw: GatewayThread, tmp_path: Path) -> dict[str, Path]:
    with Registry.open(gw.config) as registry:
        return registry.provision_thing("dev1").write(tmp_path / "dev1")


def test_v2_jobs_client_runs_a_job_to_success(gw: GatewayThread, files: dict[str, Path]) -> None:
    import awsiot
    from awsiot import iotjobs

    iot = gw.client("iot")
    with sdk_mqtt5(gw.port("mqtts"), files["certificate"], files["private_key"], files["ca"], "dev1") as client:
        jobs = iotjobs.IotJobsClientV2(client, rr_options())
        _stream, nexts = open_stream(jobs.create_next_job_execution_changed_stream,
                                     iotjobs.NextJobExecutionChangedSubscriptionRequest(thing_name="dev1"))
        iot.create_job(jobId="ota-1", targets=[f"{ARN}:thing/dev1"],
                       document=json.dumps({"action": "update", "version": "2.0"}))
        event = nexts.get(timeout=SDK_TIMEOUT)
        assert event.execution.job_id == "ota-1" and event.execution.status == "QUEUED"
        assert event.timestamp.year >= 2024, "epoch seconds parse to a real date"

        pending = jobs.get_pending_job_executions(
            iotjobs.GetPendingJobExecutionsRequest(thing_name="dev1")).result(SDK_TIMEOUT)
        assert [j.job_id for j in pending.queued_jobs] == ["ota-1"] and pending.in_progress_jobs == []

        started = jobs.start_next_pending_job_execution(iotjobs.StartNextPendingJobExecutionRequest(
            thing_name="dev1", status_details={"stage": "download"})).result(SDK_TIMEOUT)
        assert started.execution.job_document == {"action": "update", "version": "2.0"}
        assert started.execution.status == "IN_PROGRESS" and started.execution.version_number == 2

        update = jobs.update_job_execution(iotjobs.UpdateJobExecutionRequest(
            thing_name="dev1", job_id="ota-1", status="IN_PROGRESS", status_details={"stage": "install"},
            expected_version=2, include_job_execution_state=True)).result(SDK_TIMEOUT)
        assert update.execution_state.status == "IN_PROGRESS" and update.execution_state.version_number == 3

        with pytest.raises(awsiot.V2ServiceException) as stale:
            jobs.update_job_execution(iotjobs.UpdateJobExecutionRequest(
                thing_name="dev1", job_id="ota-1", status="SUCCEEDED", expected_version=2)).result(SDK_TIMEOUT)
        assert stale.value.modeled_error.code == "VersionMismatch"
        assert stale.value.modeled_error.execution_state.version_number == 3

        jobs.update_job_execution(iotjobs.UpdateJobExecutionRequest(
            thing_name="dev1", job_id="ota-1", status="SUCCEEDED", expected_version=3)).result(SDK_TIMEOUT)
        assert nexts.get(timeout=SDK_TIMEOUT).execution is None  # nothing pending any more
        described = jobs.describe_job_execution(iotjobs.DescribeJobExecutionRequest(
            thing_name="dev1", job_id="ota-1")).result(SDK_TIMEOUT)
        assert described.execution.status == "SUCCEEDED"
    job = iot.describe_job(jobId="ota-1")["job"]
    assert job["status"] == "COMPLETED" and job["jobProcessDetails"]["numberOfSucceededThings"] == 1


def test_classic_jobs_client_over_mqtt311(gw: GatewayThread, files: dict[str, Path]) -> None:
    from awscrt import mqtt
    from awsiot import iotjobs, mqtt_connection_builder

    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="127.0.0.1", port=gw.port("mqtts"), cert_filepath=str(files["certificate"]),
        pri_key_filepath=str(files["private_key"]), ca_filepath=str(files["ca"]), client_id="dev1",
        clean_session=True, keep_alive_secs=30)
    connection.connect().result(SDK_TIMEOUT)
    try:
        jobs = iotjobs.IotJobsClient(connection)
        nexts: queue.Queue[Any] = queue.Queue()
        accepted: Future[Any] = Future()
        sub, _ = jobs.subscribe_to_next_job_execution_changed_events(
            iotjobs.NextJobExecutionChangedSubscriptionRequest(thing_name="dev1"), mqtt.QoS.AT_LEAST_ONCE, nexts.put)
        sub.result(SDK_TIMEOUT)
        sub, _ = jobs.subscribe_to_start_next_pending_job_execution_accepted(
            iotjobs.StartNextPendingJobExecutionSubscriptionRequest(thing_name="dev1"), mqtt.QoS.AT_LEAST_ONCE,
            lambda response: accepted.done() or accepted.set_result(response))
        sub.result(SDK_TIMEOUT)
        gw.client("iot").create_job(jobId="cfg", targets=[f"{ARN}:thing/dev1"], document='{"rate": 5}')
        assert nexts.get(timeout=SDK_TIMEOUT).execution.job_id == "cfg"
        jobs.publish_start_next_pending_job_execution(iotjobs.StartNextPendingJobExecutionRequest(
            thing_name="dev1", client_token="tok-1"), mqtt.QoS.AT_LEAST_ONCE).result(SDK_TIMEOUT)
        response = accepted.result(SDK_TIMEOUT)
        assert response.client_token == "tok-1" and response.execution.job_document == {"rate": 5}
    finally:
        connection.disconnect().result(SDK_TIMEOUT)
