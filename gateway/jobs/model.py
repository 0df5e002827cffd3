"""The jobs data model: job and execution records, the execution state machine, and validation rules
from the botocore `iot` model (names, timeouts, status details)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from gateway.jobs.errors import InvalidRequest

# Execution statuses (awsiot.iotjobs.JobStatus).
QUEUED, IN_PROGRESS = "QUEUED", "IN_PROGRESS"
SUCCEEDED, FAILED, REJECTED = "SUCCEEDED", "FAILED", "REJECTED"
TIMED_OUT, CANCELED, REMOVED = "TIMED_OUT", "CANCELED", "REMOVED"
PENDING = (QUEUED, IN_PROGRESS)
TERMINAL = (SUCCEEDED, FAILED, REJECTED, TIMED_OUT, CANCELED, REMOVED)
DEVICE_SETTABLE = (IN_PROGRESS, SUCCEEDED, FAILED, REJECTED)
ALL_EXECUTION_STATUSES = (*PENDING, *TERMINAL)

# Job statuses.
JOB_IN_PROGRESS, JOB_CANCELED, JOB_COMPLETED = "IN_PROGRESS", "CANCELED", "COMPLETED"
JOB_STATUSES = (JOB_IN_PROGRESS, JOB_CANCELED, JOB_COMPLETED, "DELETION_IN_PROGRESS", "SCHEDULED")
SNAPSHOT, CONTINUOUS = "SNAPSHOT", "CONTINUOUS"

JOB_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MAX_TIMEOUT_MINUTES = 10080  # 7 days, both for step and in-progress timeouts
MAX_STATUS_DETAILS = 10
DETAIL_KEY = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
MAX_DETAIL_VALUE = 1024

# Event names of `$aws/events/jobExecution/<jobId>/<event>` by terminal status.
EXECUTION_EVENT = {s: s.lower() for s in TERMINAL}


def check_job_id(value: object) -> str:
    if not isinstance(value, str) or not JOB_ID.fullmatch(value):
        raise InvalidRequest(f"invalid jobId {value!r}: must be 1-64 characters of a-z A-Z 0-9 _ -")
    return value


def check_timeout(value: object, what: str) -> int:
    """A timeout in minutes: a whole number from 1 to 10080 (AWS's range)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TIMEOUT_MINUTES:
        raise InvalidRequest(f"{what} must be a whole number of minutes from 1 to {MAX_TIMEOUT_MINUTES}, not {value!r}")
    return value


def check_status_details(value: object) -> dict[str, str]:
    """statusDetails: at most 10 entries, keys `[a-zA-Z0-9:_-]{1,128}`, string values up to 1024 characters."""
    if not isinstance(value, dict):
        raise InvalidRequest(f"statusDetails must be a map of string to string, not {type(value).__name__}")
    if len(value) > MAX_STATUS_DETAILS:
        raise InvalidRequest(f"statusDetails can have at most {MAX_STATUS_DETAILS} entries, not {len(value)}")
    for key, item in value.items():
        if not DETAIL_KEY.fullmatch(key):
            raise InvalidRequest(f"invalid statusDetails key {key!r}: must be 1-128 characters of a-z A-Z 0-9 : _ -")
        if not isinstance(item, str) or not 1 <= len(item) <= MAX_DETAIL_VALUE:
            raise InvalidRequest(f"statusDetails value of {key!r} must be a string of 1-{MAX_DETAIL_VALUE} characters")
    return dict(value)


def check_document(text: object, max_bytes: int) -> str:
    """A job document: JSON text whose top level is an object, at most `max_bytes` bytes."""
    if not isinstance(text, str) or not text:
        raise InvalidRequest("document is required: a JSON object as a string")
    if len(text.encode()) > max_bytes:
        raise InvalidRequest(f"the job document is {len(text.encode())} bytes; at most {max_bytes} are allowed")
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f"the job document is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvalidRequest("the job document must be a JSON object")
    return text


@dataclass
class Job:
    """One job as stored."""

    job_id: str
    arn: str
    target_selection: str
    status: str
    document: str
    targets: list[str]
    description: str | None = None
    timeout_minutes: int | None = None
    presigned_url_config: dict[str, Any] | None = None
    created_at: float = 0.0
    last_updated_at: float = 0.0
    completed_at: float | None = None
    reason_code: str | None = None
    comment: str | None = None
    force_canceled: bool = False


@dataclass
class Execution:
    """One job execution on one thing."""

    job_id: str
    thing_name: str
    execution_number: int
    status: str = QUEUED
    status_details: dict[str, str] = field(default_factory=dict)
    queued_at: float = 0.0
    started_at: float | None = None
    last_updated_at: float = 0.0
    version: int = 1
    step_deadline: float | None = None
    progress_deadline: float | None = None
    force_canceled: bool = False

    @property
    def deadline(self) -> float | None:
        """When it times out: the earlier of the step and the in-progress deadlines."""
        found = [d for d in (self.step_deadline, self.progress_deadline) if d is not None]
        return min(found) if found else None

    def state(self) -> dict[str, Any]:
        """The device API's JobExecutionState."""
        return {"status": self.status, "statusDetails": self.status_details, "versionNumber": self.version}

    def summary(self) -> dict[str, Any]:
        """The device API's JobExecutionSummary (timestamps in epoch seconds)."""
        out: dict[str, Any] = {
            "jobId": self.job_id, "queuedAt": int(self.queued_at), "lastUpdatedAt": int(self.last_updated_at),
            "versionNumber": self.version, "executionNumber": self.execution_number,
        }
        if self.started_at is not None:
            out["startedAt"] = int(self.started_at)
        return out

    def device_view(self, document: dict[str, Any] | None) -> dict[str, Any]:
        """The device API's JobExecution (JobExecutionData); `document` is left out when None."""
        out = {**self.summary(), "thingName": self.thing_name, "status": self.status,
               "statusDetails": self.status_details}
        if document is not None:
            out["jobDocument"] = document
        return out
