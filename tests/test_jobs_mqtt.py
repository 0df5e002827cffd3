"""The jobs device API over MQTT with paho on raw topics: documents, state machine, AWS's rejections,
notifications, events, timeouts and presigned S3 URLs; jobs created through boto3 `iot`."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_jobs_support import GatewayThread, JsonClient, running_gateway

ARN = "arn:aws:iot:us-east-1:000000000000"
P = "$aws/things/t1/jobs"


@pytest.fixture
def gw(home: Path) -> Iterator[GatewayThread]:
    with running_gateway(home, jobs={"minute_secs": 0.3, "membership_poll_secs": 0.05}) as g:
        iot = g.client("iot")
        for name in ("t1", "t2"):
            iot.create_thing(thingName=name)
        yield g


@pytest.fixture
def iot(gw: GatewayThread) -> Any:
    return gw.client("iot")


@pytest.fixture
def device(gw: GatewayThread) -> Iterator[JsonClient]:
    c = JsonClient(gw.port("dev"), "t1")
    assert c.subscribe(f"{P}/#", 1)[0] == 1
    yield c
    c.close()


def create(iot: Any, job_id: str, document: dict[str, Any] | None = None, **extra: Any) -> None:
    iot.create_job(jobId=job_id, targets=extra.pop("targets", [f"{ARN}:thing/t1"]),
                   document=json.dumps(document or {"operation": job_id}), **extra)


def test_full_flow_with_notifications_documents_and_events(iot: Any, device: JsonClient, gw: GatewayThread) -> None:
    events = JsonClient(gw.port("dev"), "observer")
    events.subscribe("$aws/events/#", 1)
    create(iot, "j1", {"url": "https://example.com/fw.bin"})
    assert device.expect(f"{P}/notify")["jobs"]["QUEUED"][0]["jobId"] == "j1"
    nxt = device.expect(f"{P}/notify-next")["execution"]
    assert nxt["jobId"] == "j1" and nxt["status"] == "QUEUED" and nxt["jobDocument"] == {"url": "https://example.com/fw.bin"}

    device.request(f"{P}/get", {"clientToken": "c1"})
    pending = device.expect(f"{P}/get/accepted")
    assert pending["clientToken"] == "c1" and pending["inProgressJobs"] == []
    assert [j["jobId"] for j in pending["queuedJobs"]] == ["j1"] and isinstance(pending["timestamp"], int)

    device.request(f"{P}/start-next", {"clientToken": "c2", "statusDetails": {"step": "download"}})
    started = device.expect(f"{P}/start-next/accepted")["execution"]
    assert started["status"] == "IN_PROGRESS" and started["versionNumber"] == 2
    assert started["statusDetails"] == {"step": "download"} and "startedAt" in started

    device.request(f"{P}/j1/update", {"status": "IN_PROGRESS", "statusDetails": {"progress": "50"},
                                      "expectedVersion": 2, "includeJobExecutionState": True})
    state = device.expect(f"{P}/j1/update/accepted")["executionState"]
    assert state == {"status": "IN_PROGRESS", "statusDetails": {"step": "download", "progress": "50"},
                     "versionNumber": 3}
    device.request(f"{P}/j1/update", {"status": "SUCCEEDED", "includeJobDocument": True, "clientToken": "c3"})
    done = device.expect(f"{P}/j1/update/accepted")
    assert done["clientToken"] == "c3" and done["jobDocument"] == {"url": "https://example.com/fw.bin"}
    assert device.expect(f"{P}/notify-next") == {"timestamp": pytest.approx(done["timestamp"], abs=2)}

    succeeded = events.expect("$aws/events/jobExecution/j1/succeeded")
    assert succeeded["thingArn"] == f"{ARN}:thing/t1" and succeeded["status"] == "SUCCEEDED"
    completed = events.expect("$aws/events/job/j1/completed")
    assert completed["status"] == "COMPLETED" and completed["jobProcessDetails"]["numberOfSucceededThings"] == 1
    assert iot.describe_job(jobId="j1")["job"]["status"] == "COMPLETED"
    events.close()


def test_invalid_transitions_versions_and_bad_input_are_rejected_as_aws(iot: Any, device: JsonClient) -> None:
    create(iot, "j1")
    device.request(f"{P}/j1/update", {"status": "IN_PROGRESS", "expectedVersion": 7, "clientToken": "v"})
    stale = device.expect(f"{P}/j1/update/rejected")
    assert stale["code"] == "VersionMismatch" and stale["clientToken"] == "v"
    assert stale["executionState"] == {"status": "QUEUED", "statusDetails": {}, "versionNumber": 1}

    device.request(f"{P}/j1/update", {"status": "FAILED"})
    assert device.expect(f"{P}/j1/update/accepted") is not None
    device.request(f"{P}/j1/update", {"status": "IN_PROGRESS"})
    wrong = device.expect(f"{P}/j1/update/rejected")
    assert wrong["code"] == "InvalidStateTransition" and wrong["executionState"]["status"] == "FAILED"

    cases: list[tuple[str, Any, str]] = [
        (f"{P}/j1/update", b"{not json", "InvalidJson"),
        (f"{P}/j1/update", {"statusDetails": {"a": "b"}}, "InvalidRequest"),
        (f"{P}/j1/update", {"status": "TIMED_OUT"}, "InvalidRequest"),
        (f"{P}/j1/update", {"status": "IN_PROGRESS", "statusDetails": {"bad key!": "x"}}, "InvalidRequest"),
        (f"{P}/nope/update", {"status": "IN_PROGRESS"}, "ResourceNotFound"),
        (f"{P}/nope/get", {}, "ResourceNotFound"),
        (f"{P}/j1/get", {"executionNumber": 99}, "ResourceNotFound"),
        (f"{P}/start-next", {"stepTimeoutInMinutes": 0}, "InvalidRequest"),
        (f"{P}/j1/bogus", {}, "InvalidTopic"),
    ]
    for topic, body, code in cases:
        device.request(topic, body)
        assert device.expect(f"{topic}/rejected")["code"] == code, (topic, body)
    # Rejections changed nothing.
    execution = iot.describe_job_execution(jobId="j1", thingName="t1")["execution"]
    assert execution["status"] == "FAILED" and execution["versionNumber"] == 2


def test_answers_go_only_to_the_requesting_client(iot: Any, gw: GatewayThread, device: JsonClient) -> None:
    other = JsonClient(gw.port("dev"), "eavesdropper")
    other.subscribe(f"{P}/get/+", 1)
    other.subscribe(f"{P}/notify-next", 1)
    create(iot, "j1")
    assert other.expect(f"{P}/notify-next")["execution"]["jobId"] == "j1"  # notifications go to all
    device.request(f"{P}/get", {"clientToken": "mine"})
    assert device.expect(f"{P}/get/accepted")["clientToken"] == "mine"
    other.assert_nothing(0.3)
    other.close()


def test_next_ordering_describe_next_and_group_targets(iot: Any, device: JsonClient) -> None:
    iot.create_thing_group(thingGroupName="fleet")
    iot.create_thing_group(thingGroupName="fleet-eu", parentGroupName="fleet")
    iot.add_thing_to_thing_group(thingGroupName="fleet-eu", thingName="t1")
    create(iot, "a", targets=[f"{ARN}:thinggroup/fleet"])
    create(iot, "b")
    device.request(f"{P}/$next/get", {})
    assert device.expect(f"{P}/$next/get/accepted")["execution"]["jobId"] == "a"
    device.request(f"{P}/b/update", {"status": "IN_PROGRESS"})
    device.expect(f"{P}/b/update/accepted")
    device.request(f"{P}/$next/get", {"includeJobDocument": False})
    nxt = device.expect(f"{P}/$next/get/accepted")["execution"]
    assert nxt["jobId"] == "b" and "jobDocument" not in nxt  # IN_PROGRESS comes first
    device.request(f"{P}/start-next", {})
    assert device.expect(f"{P}/start-next/accepted")["execution"]["jobId"] == "b"


def test_step_and_in_progress_timeouts(iot: Any, device: JsonClient, gw: GatewayThread) -> None:
    events = JsonClient(gw.port("dev"), "observer")
    events.subscribe("$aws/events/jobExecution/#", 1)
    create(iot, "step")
    create(iot, "overall", timeoutConfig={"inProgressTimeoutInMinutes": 1})
    device.request(f"{P}/start-next", {"stepTimeoutInMinutes": 1})
    assert device.expect(f"{P}/start-next/accepted")["execution"]["jobId"] == "step"
    timed_out = events.expect("$aws/events/jobExecution/step/timed_out")
    assert timed_out["status"] == "TIMED_OUT"
    device.request(f"{P}/overall/update", {"status": "IN_PROGRESS", "stepTimeoutInMinutes": 5})
    device.expect(f"{P}/overall/update/accepted")
    assert events.expect("$aws/events/jobExecution/overall/timed_out")["status"] == "TIMED_OUT"
    device.request(f"{P}/step/update", {"status": "SUCCEEDED"})
    assert device.expect(f"{P}/step/update/rejected")["code"] == "InvalidStateTransition"
    assert iot.describe_job(jobId="overall")["job"]["jobProcessDetails"]["numberOfTimedOutThings"] == 1
    events.close()


def test_presigned_url_placeholders_resolve_to_the_local_s3_endpoint(iot: Any, device: JsonClient,
                                                                     gw: GatewayThread) -> None:
    s3 = gw.client("s3")
    s3.create_bucket(Bucket="firmware")
    s3.put_object(Bucket="firmware", Key="v2/app.bin", Body=b"\x7fELF-firmware")
    placeholder = "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/v2/app.bin}"
    create(iot, "ota", {"files": [{"url": placeholder}]}, presignedUrlConfig={
        "roleArn": "arn:aws:iam::000000000000:role/ota", "expiresInSec": 300})
    assert iot.get_job_document(jobId="ota")["document"].count(placeholder) == 1
    device.request(f"{P}/start-next", {})
    url = device.expect(f"{P}/start-next/accepted")["execution"]["jobDocument"]["files"][0]["url"]
    assert url.startswith(gw.endpoint + "/firmware/v2/app.bin?") and "X-Amz-Expires=300" in url
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.read() == b"\x7fELF-firmware"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url.replace("X-Amz-Expires=300", "X-Amz-Expires=301"), timeout=5)
    assert refused.value.code == 403


def test_continuous_jobs_follow_group_membership(iot: Any, gw: GatewayThread) -> None:
    iot.create_thing_group(thingGroupName="g")
    create(iot, "snap", targets=[f"{ARN}:thinggroup/g"])
    create(iot, "cont", targets=[f"{ARN}:thinggroup/g"], targetSelection="CONTINUOUS")
    assert iot.describe_job(jobId="snap")["job"]["status"] == "COMPLETED"  # empty group: nothing to do
    watcher = JsonClient(gw.port("dev"), "t2")
    watcher.subscribe("$aws/things/t2/jobs/notify-next", 1)
    iot.add_thing_to_thing_group(thingGroupName="g", thingName="t2")
    assert watcher.expect("$aws/things/t2/jobs/notify-next")["execution"]["jobId"] == "cont"
    things = iot.list_job_executions_for_job(jobId="snap")["executionSummaries"]
    assert things == []  # a snapshot job does not pick up later members
    iot.remove_thing_from_thing_group(thingGroupName="g", thingName="t2")
    assert "execution" not in watcher.expect("$aws/things/t2/jobs/notify-next")  # nothing pending any more
    summary = iot.describe_job_execution(jobId="cont", thingName="t2")["execution"]
    assert summary["status"] == "REMOVED"
    watcher.close()
