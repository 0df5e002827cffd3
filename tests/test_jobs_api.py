"""The jobs operations of the `iot` control plane with boto3: shapes, AWS's errors, cancel and delete
semantics, execution operations, and durability of `<home>/jobs.db` across a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_jobs_support import GatewayThread, running_gateway

ARN = "arn:aws:iot:us-east-1:000000000000"
DOC = json.dumps({"operation": "reboot"})


@pytest.fixture
def gw(home: Path) -> Iterator[GatewayThread]:
    with running_gateway(home) as g:
        yield g


@pytest.fixture
def iot(gw: GatewayThread) -> Any:
    client = gw.client("iot")
    for name in ("a", "b", "c"):
        client.create_thing(thingName=name)
    client.create_thing_group(thingGroupName="g")
    client.add_thing_to_thing_group(thingGroupName="g", thingName="b")
    client.add_thing_to_thing_group(thingGroupName="g", thingName="c")
    return client


def code(info: pytest.ExceptionInfo[Any]) -> str:
    return str(info.value.response["Error"]["Code"])


def test_create_describe_list_and_executions(iot: Any) -> None:
    created = iot.create_job(jobId="j1", targets=[f"{ARN}:thing/a", f"{ARN}:thinggroup/g"], document=DOC,
                             description="reboot all", timeoutConfig={"inProgressTimeoutInMinutes": 30})
    assert created["jobArn"] == f"{ARN}:job/j1" and created["description"] == "reboot all"
    job = iot.describe_job(jobId="j1")["job"]
    assert job["status"] == "IN_PROGRESS" and job["targetSelection"] == "SNAPSHOT"
    assert job["jobProcessDetails"]["numberOfQueuedThings"] == 3
    assert job["timeoutConfig"] == {"inProgressTimeoutInMinutes": 30}
    assert json.loads(iot.get_job_document(jobId="j1")["document"]) == {"operation": "reboot"}
    iot.create_job(jobId="j2", targets=[f"{ARN}:thing/a"], document=DOC)
    assert [j["jobId"] for j in iot.list_jobs()["jobs"]] == ["j2", "j1"]
    assert [j["jobId"] for j in iot.list_jobs(thingGroupName="g")["jobs"]] == ["j1"]
    page = iot.list_jobs(maxResults=1)
    assert len(page["jobs"]) == 1 and iot.list_jobs(nextToken=page["nextToken"])["jobs"][0]["jobId"] == "j1"
    things = iot.list_job_executions_for_job(jobId="j1")["executionSummaries"]
    assert sorted(t["thingArn"].rsplit("/")[-1] for t in things) == ["a", "b", "c"]
    assert {t["jobExecutionSummary"]["status"] for t in things} == {"QUEUED"}
    for_thing = iot.list_job_executions_for_thing(thingName="a")["executionSummaries"]
    assert [x["jobId"] for x in for_thing] == ["j1", "j2"]
    execution = iot.describe_job_execution(jobId="j1", thingName="a")["execution"]
    assert execution["status"] == "QUEUED" and execution["versionNumber"] == 1


def test_create_job_rejects_bad_input_as_aws(iot: Any) -> None:
    iot.create_job(jobId="dup", targets=[f"{ARN}:thing/a"], document=DOC)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"jobId": "dup", "targets": [f"{ARN}:thing/a"], "document": DOC}, "ResourceAlreadyExistsException"),
        ({"jobId": "j", "targets": [f"{ARN}:thing/ghost"], "document": DOC}, "ResourceNotFoundException"),
        ({"jobId": "j", "targets": [f"{ARN}:thinggroup/ghost"], "document": DOC}, "ResourceNotFoundException"),
        ({"jobId": "j", "targets": ["a"], "document": DOC}, "InvalidRequestException"),
        ({"jobId": "j", "targets": [f"{ARN}:thing/a"], "document": "{oops"}, "InvalidRequestException"),
        ({"jobId": "j", "targets": [f"{ARN}:thing/a"], "document": "[1]"}, "InvalidRequestException"),
        ({"jobId": "j", "targets": [f"{ARN}:thing/a"]}, "InvalidRequestException"),
        ({"jobId": "bad id!", "targets": [f"{ARN}:thing/a"], "document": DOC}, "InvalidRequestException"),
        ({"jobId": "j", "targets": [f"{ARN}:thing/a"], "document": DOC,
          "timeoutConfig": {"inProgressTimeoutInMinutes": 0}}, "InvalidRequestException"),
    ]
    for kwargs, expected in cases:
        with pytest.raises(iot.exceptions.ClientError) as info:
            iot.create_job(**kwargs)
        assert code(info) == expected, kwargs
    assert [j["jobId"] for j in iot.list_jobs()["jobs"]] == ["dup"]
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_job(jobId="ghost")


def test_cancel_and_delete_semantics(iot: Any, gw: GatewayThread) -> None:
    iot.create_job(jobId="j1", targets=[f"{ARN}:thing/a", f"{ARN}:thing/b"], document=DOC)
    engine = gw.gateway.jobs.engine  # type: ignore[union-attr]
    engine.update_from_device("a", "j1", {"status": "IN_PROGRESS"})
    with pytest.raises(iot.exceptions.InvalidStateTransitionException):
        iot.delete_job(jobId="j1")
    iot.cancel_job(jobId="j1", comment="bad build", reasonCode="BUILD")
    job = iot.describe_job(jobId="j1")["job"]
    assert (job["status"], job["comment"], job["reasonCode"]) == ("CANCELED", "bad build", "BUILD")
    states = {x["thingArn"][-1]: x["jobExecutionSummary"]["status"]
              for x in iot.list_job_executions_for_job(jobId="j1")["executionSummaries"]}
    assert states == {"a": "IN_PROGRESS", "b": "CANCELED"}
    iot.cancel_job(jobId="j1", force=True)
    assert iot.describe_job_execution(jobId="j1", thingName="a")["execution"]["forceCanceled"] is True
    iot.delete_job(jobId="j1")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_job(jobId="j1")
    assert iot.list_job_executions_for_thing(thingName="a")["executionSummaries"] == []

    iot.create_job(jobId="j2", targets=[f"{ARN}:thing/c"], document=DOC)
    engine.update_from_device("c", "j2", {"status": "SUCCEEDED"})
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.cancel_job(jobId="j2")  # COMPLETED
    iot.delete_job(jobId="j2")


def test_execution_operations(iot: Any, gw: GatewayThread) -> None:
    iot.create_job(jobId="j1", targets=[f"{ARN}:thinggroup/g"], document=DOC)
    with pytest.raises(iot.exceptions.VersionConflictException):
        iot.cancel_job_execution(jobId="j1", thingName="b", expectedVersion=5)
    iot.cancel_job_execution(jobId="j1", thingName="b", expectedVersion=1, statusDetails={"why": "spare"})
    execution = iot.describe_job_execution(jobId="j1", thingName="b")["execution"]
    assert execution["status"] == "CANCELED" and execution["statusDetails"]["detailsMap"] == {"why": "spare"}
    with pytest.raises(iot.exceptions.InvalidStateTransitionException):
        iot.cancel_job_execution(jobId="j1", thingName="b")
    gw.gateway.jobs.engine.update_from_device("c", "j1", {"status": "IN_PROGRESS"})  # type: ignore[union-attr]
    with pytest.raises(iot.exceptions.InvalidStateTransitionException):
        iot.cancel_job_execution(jobId="j1", thingName="c")
    number = iot.describe_job_execution(jobId="j1", thingName="c")["execution"]["executionNumber"]
    with pytest.raises(iot.exceptions.InvalidStateTransitionException):
        iot.delete_job_execution(jobId="j1", thingName="c", executionNumber=number)
    iot.delete_job_execution(jobId="j1", thingName="c", executionNumber=number, force=True)
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_job_execution(jobId="j1", thingName="c")


def test_jobs_survive_a_restart(home: Path) -> None:
    with running_gateway(home) as gw:
        iot = gw.client("iot")
        iot.create_thing(thingName="a")
        iot.create_job(jobId="keep", targets=[f"{ARN}:thing/a"], document=DOC)
        gw.gateway.jobs.engine.update_from_device(  # type: ignore[union-attr]
            "a", "keep", {"status": "IN_PROGRESS", "statusDetails": {"step": "2"}})
    with running_gateway(home) as gw:
        execution = gw.client("iot").describe_job_execution(jobId="keep", thingName="a")["execution"]
        assert execution["status"] == "IN_PROGRESS" and execution["statusDetails"]["detailsMap"] == {"step": "2"}
