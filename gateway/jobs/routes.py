"""The jobs operations of the AWS IoT control plane (boto3 `iot`): routes and shapes from the botocore model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.awsapi.errors import AwsError
from gateway.identity.iot_api import IotControlPlane, Params
from gateway.jobs.engine import JobsEngine


def add_job_routes(iot: IotControlPlane, engine: JobsEngine) -> None:
    """Mount CreateJob, DescribeJob, ListJobs, CancelJob, DeleteJob, UpdateJob, GetJobDocument and the
    job-execution operations on the `iot` control plane."""
    g = engine
    routes: list[tuple[str, str, Callable[[Params], dict[str, Any] | None]]] = [
        ("PUT", "/jobs/{jobId}", lambda p: g.create_job(p.path["jobId"], dict(p.body))),
        ("GET", "/jobs/{jobId}", lambda p: g.describe_job(p.path["jobId"])),
        ("PATCH", "/jobs/{jobId}", lambda p: g.update_job(p.path["jobId"], dict(p.body))),
        ("DELETE", "/jobs/{jobId}", lambda p: g.delete_job(p.path["jobId"], p.flag("force"))),
        ("GET", "/jobs", lambda p: g.list_jobs(
            p.query.get("status"), p.query.get("targetSelection"), p.query.get("thingGroupName"),
            p.number("maxResults"), p.query.get("nextToken"))),
        ("PUT", "/jobs/{jobId}/cancel", lambda p: g.cancel_job(
            p.path["jobId"], p.body.get("reasonCode"), p.body.get("comment"), p.flag("force"))),
        ("GET", "/jobs/{jobId}/job-document", lambda p: g.job_document(p.path["jobId"])),
        ("GET", "/jobs/{jobId}/things", lambda p: g.executions_for_job(
            p.path["jobId"], p.query.get("status"), p.number("maxResults"), p.query.get("nextToken"))),
        ("GET", "/things/{thingName}/jobs", lambda p: g.executions_for_thing(
            p.path["thingName"], p.query.get("status"), p.query.get("jobId"), p.number("maxResults"),
            p.query.get("nextToken"))),
        ("GET", "/things/{thingName}/jobs/{jobId}", lambda p: g.describe_execution(
            p.path["jobId"], p.path["thingName"], p.number("executionNumber"))),
        ("PUT", "/things/{thingName}/jobs/{jobId}/cancel", lambda p: g.cancel_execution(
            p.path["jobId"], p.path["thingName"], p.flag("force"), p.body.get("expectedVersion"),
            p.body.get("statusDetails"))),
        ("DELETE", "/things/{thingName}/jobs/{jobId}/executionNumber/{executionNumber}", lambda p: g.delete_execution(
            p.path["jobId"], p.path["thingName"], _int(p.path["executionNumber"]), p.flag("force"))),
    ]
    for method, template, handler in routes:
        iot.add_route(method, template, handler)


def _int(text: str) -> int:
    if not text.isdigit():
        raise AwsError("InvalidRequestException", f"executionNumber must be a whole number, not {text!r}")
    return int(text)
