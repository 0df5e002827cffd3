"""The jobs engine: AWS IoT jobs semantics over the store and the registry, shared by the control plane
(boto3 `iot`, the CLI) and the device MQTT API.

Thread-safe and blocking (SQLite): run it in worker threads. Every change commits atomically, then hands
what AWS publishes about it (`notify`, `notify-next`, `$aws/events/job...`) to `emit`, which must be safe
to call from any thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from edgeloop.config import Config
from gateway.identity.errors import IdentityError
from gateway.identity.registry import Registry
from gateway.jobs import errors as e
from gateway.jobs.documents import Presigner, resolve
from gateway.jobs.errors import InvalidRequest, InvalidStateTransition, JobRejection, ResourceNotFound
from gateway.jobs.model import (
    ALL_EXECUTION_STATUSES,
    CANCELED,
    CONTINUOUS,
    DEVICE_SETTABLE,
    EXECUTION_EVENT,
    IN_PROGRESS,
    JOB_CANCELED,
    JOB_COMPLETED,
    JOB_IN_PROGRESS,
    JOB_STATUSES,
    QUEUED,
    REMOVED,
    SNAPSHOT,
    TERMINAL,
    TIMED_OUT,
    Execution,
    Job,
    check_document,
    check_job_id,
    check_status_details,
    check_timeout,
)
from gateway.jobs.store import JobStore

log = logging.getLogger("edgeloop.jobs")

Effect = tuple[str, dict[str, Any]]
Emit = Callable[[list[Effect]], None]
NEXT = "$next"
MAX_PAGE = 250


class _Changes:
    """What one unit of work changed: things whose pending executions moved, and events to publish."""

    def __init__(self, engine: JobsEngine) -> None:
        self.engine = engine
        self.next_before: dict[str, str | None] = {}
        self.effects: list[Effect] = []
        self.jobs_changed = False  # a job was created, canceled or deleted (the timekeeper re-plans)

    def touch(self, thing: str) -> None:
        if thing not in self.next_before:
            nxt = self.engine._next_execution(thing)
            self.next_before[thing] = None if nxt is None else nxt.job_id


class JobsEngine:
    """Jobs, executions and their state machine."""

    def __init__(self, store: JobStore, registry: Registry, config: Config, emit: Emit | None = None,
                 presigner: Callable[[], Presigner | None] = lambda: None, clock: Callable[[], float] = time.time):
        self.store = store
        self.registry = registry
        self.config = config
        self.emit: Emit = emit or (lambda effects: None)
        self.presigner = presigner
        self.clock = clock
        self.minute = config.jobs.minute_secs
        self.lock = threading.RLock()

    # -- plumbing ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _change(self) -> Iterator[_Changes]:
        """A unit of work: atomic in the store; afterwards notify / notify-next for every touched thing."""
        with self.lock:
            changes = _Changes(self)
            with self.store.transaction():
                yield changes
            now = int(self.clock())
            for thing, before in changes.next_before.items():
                pending = self.store.executions_of_thing(thing, pending_only=True)
                changes.effects.append((f"$aws/things/{thing}/jobs/notify", {"timestamp": now, "jobs": {
                    status: [x.summary() for x in pending if x.status == status]
                    for status in (QUEUED, IN_PROGRESS) if any(x.status == status for x in pending)}}))
                after = pending[0] if pending else None
                if (None if after is None else after.job_id) != before:
                    body: dict[str, Any] = {"timestamp": now}
                    if after is not None:
                        body["execution"] = after.device_view(self._device_document(after.job_id))
                    changes.effects.append((f"$aws/things/{thing}/jobs/notify-next", body))
        if changes.effects or changes.jobs_changed:
            self.emit(changes.effects)

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:iot:{self.config.aws.region}:{self.config.aws.account_id}:{kind}/{name}"

    def _job(self, job_id: str) -> Job:
        job = self.store.job(job_id)
        if job is None:
            raise ResourceNotFound(f"job {job_id} does not exist")
        return job

    def _execution(self, job_id: str, thing: str) -> Execution:
        execution = self.store.execution(job_id, thing)
        if execution is None:
            raise ResourceNotFound(f"job {job_id} has no execution on thing {thing}")
        return execution

    def _next_execution(self, thing: str) -> Execution | None:
        pending = self.store.executions_of_thing(thing, pending_only=True)
        return pending[0] if pending else None

    def _device_document(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        expires = int((job.presigned_url_config or {}).get("expiresInSec") or self.config.jobs.presign_expires_secs)
        return resolve(job.document, self.presigner(), expires)

    def _targets(self, targets: object) -> list[tuple[str, str]]:
        """(kind, name) of each target ARN; every target must exist."""
        if not isinstance(targets, list) or not targets:
            raise InvalidRequest("targets is required: a list of thing or thing group ARNs")
        parsed = []
        for arn in targets:
            kind, _, name = str(arn).rpartition(":")[2].partition("/")
            if kind not in ("thing", "thinggroup") or not name or not str(arn).startswith("arn:"):
                raise InvalidRequest(f"invalid target {arn!r}: give a thing ARN (…:thing/<name>) "
                                     "or a thing group ARN (…:thinggroup/<name>)")
            if kind == "thing" and not self.registry.things.exists(name):
                raise ResourceNotFound(f"thing {name} does not exist")
            if kind == "thinggroup":
                try:
                    self.registry.groups.describe(name)
                except IdentityError as exc:
                    raise ResourceNotFound(f"thing group {name} does not exist") from exc
            parsed.append((kind, name))
        return parsed

    def _members(self, job: Job) -> list[str]:
        """The things a job targets now (groups expanded, including their descendants)."""
        found: list[str] = []
        for arn in job.targets:
            kind, _, name = arn.rpartition(":")[2].partition("/")
            if kind == "thing":
                found.append(name)
            else:
                with contextlib.suppress(IdentityError):
                    found.extend(self.registry.groups.things_in(name, recursive=True))
        return list(dict.fromkeys(found))

    def _queue(self, job: Job, thing: str, changes: _Changes, now: float) -> None:
        changes.touch(thing)
        number = self.store.new_execution_number()
        self.store.put_execution(Execution(job.job_id, thing, number, QUEUED, {}, now, None, now, 1))

    def _set_status(self, execution: Execution, status: str, changes: _Changes, now: float,
                    details: dict[str, str] | None = None) -> None:
        """Move an execution to `status`, write it, and record its events."""
        changes.touch(execution.thing_name)
        if status == IN_PROGRESS and execution.started_at is None:
            execution.started_at = now
        if details is not None:
            execution.status_details = details
        execution.status = status
        execution.version += 1
        execution.last_updated_at = now
        if status in TERMINAL:
            execution.step_deadline = execution.progress_deadline = None
        self.store.put_execution(execution)
        if status in TERMINAL:
            changes.effects.append((f"$aws/events/jobExecution/{execution.job_id}/{EXECUTION_EVENT[status]}", {
                "eventType": "JOB_EXECUTION", "eventId": uuid.uuid4().hex, "timestamp": int(now),
                "operation": EXECUTION_EVENT[status], "jobId": execution.job_id,
                "thingArn": self._arn("thing", execution.thing_name), "status": status,
                "statusDetails": execution.status_details,
            }))
            self._maybe_complete(execution.job_id, changes, now)

    def _maybe_complete(self, job_id: str, changes: _Changes, now: float) -> None:
        job = self._job(job_id)
        if job.status != JOB_IN_PROGRESS or job.target_selection != SNAPSHOT:
            return
        if all(x.status in TERMINAL for x in self.store.executions_of_job(job_id)):
            job.status, job.completed_at, job.last_updated_at = JOB_COMPLETED, now, now
            self.store.update_job(job)
            changes.effects.append(self._job_event(job, "completed", now))

    def _job_event(self, job: Job, operation: str, now: float) -> Effect:
        body: dict[str, Any] = {
            "eventType": "JOB", "eventId": uuid.uuid4().hex, "timestamp": int(now), "operation": operation,
            "jobId": job.job_id, "status": job.status, "targetSelection": job.target_selection,
            "targets": job.targets, "createdAt": int(job.created_at), "lastUpdatedAt": int(job.last_updated_at),
            "jobProcessDetails": self._process_details(job.job_id),
        }
        for key, value in (("description", job.description), ("comment", job.comment),
                           ("reasonCode", job.reason_code), ("completedAt", job.completed_at)):
            if value is not None:
                body[key] = int(value) if key == "completedAt" else value
        return f"$aws/events/job/{job.job_id}/{operation}", body

    def _process_details(self, job_id: str) -> dict[str, int]:
        counts = {s: 0 for s in ALL_EXECUTION_STATUSES}
        for x in self.store.executions_of_job(job_id):
            counts[x.status] += 1
        return {f"numberOf{name}Things": counts[status] for status, name in (
            (CANCELED, "Canceled"), ("SUCCEEDED", "Succeeded"), ("FAILED", "Failed"), ("REJECTED", "Rejected"),
            (QUEUED, "Queued"), (IN_PROGRESS, "InProgress"), (REMOVED, "Removed"), (TIMED_OUT, "TimedOut"))}

    # -- control plane -------------------------------------------------------------------------------

    def create_job(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """CreateJob: queue an execution on every targeted thing (groups expanded)."""
        check_job_id(job_id)
        if body.get("documentSource"):
            raise InvalidRequest("documentSource is not supported here: pass the job document in document")
        document = check_document(body.get("document"), self.config.jobs.max_document_bytes)
        selection = body.get("targetSelection") or SNAPSHOT
        if selection not in (SNAPSHOT, CONTINUOUS):
            raise InvalidRequest(f"targetSelection must be SNAPSHOT or CONTINUOUS, not {selection!r}")
        timeout = (body.get("timeoutConfig") or {}).get("inProgressTimeoutInMinutes")
        if timeout is not None:
            check_timeout(timeout, "timeoutConfig.inProgressTimeoutInMinutes")
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 2028):
            raise InvalidRequest("description must be a string of at most 2028 characters")
        targets = self._targets(body.get("targets"))
        now = self.clock()
        job = Job(job_id, self._arn("job", job_id), selection, JOB_IN_PROGRESS, document,
                  [self._arn(kind, name) for kind, name in targets], description, timeout,
                  body.get("presignedUrlConfig"), now, now)
        with self._change() as changes:
            if self.store.job(job_id) is not None:
                raise e.ResourceAlreadyExists(f"job {job_id} already exists")
            self.store.insert_job(job)
            changes.jobs_changed = True
            for thing in self._members(job):
                self._queue(job, thing, changes, now)
            self._maybe_complete(job_id, changes, now)
        log.info("event=job_created job_id=%s targets=%d selection=%s", job_id, len(targets), selection)
        return {"jobArn": job.arn, "jobId": job_id, **({"description": description} if description else {})}

    def describe_job(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        out: dict[str, Any] = {
            "jobArn": job.arn, "jobId": job.job_id, "targetSelection": job.target_selection, "status": job.status,
            "forceCanceled": job.force_canceled, "targets": job.targets, "createdAt": job.created_at,
            "lastUpdatedAt": job.last_updated_at, "jobProcessDetails": self._process_details(job_id),
            "isConcurrent": False,
        }
        optional = {"description": job.description, "completedAt": job.completed_at, "reasonCode": job.reason_code,
                    "comment": job.comment, "presignedUrlConfig": job.presigned_url_config}
        out.update({k: v for k, v in optional.items() if v is not None})
        if job.timeout_minutes is not None:
            out["timeoutConfig"] = {"inProgressTimeoutInMinutes": job.timeout_minutes}
        return {"job": out}

    def list_jobs(self, status: str | None = None, target_selection: str | None = None,
                  thing_group: str | None = None, max_results: int | None = None,
                  next_token: str | None = None) -> dict[str, Any]:
        if status is not None and status not in JOB_STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(JOB_STATUSES)}, not {status!r}")
        jobs = self.store.jobs(status, target_selection)
        if thing_group is not None:
            arn = self._arn("thinggroup", thing_group)
            jobs = [j for j in jobs if arn in j.targets]
        summaries = [{
            "jobArn": j.arn, "jobId": j.job_id, "targetSelection": j.target_selection, "status": j.status,
            "createdAt": j.created_at, "lastUpdatedAt": j.last_updated_at, "isConcurrent": False,
            **({"completedAt": j.completed_at} if j.completed_at is not None else {}),
        } for j in jobs]
        return _page(summaries, "jobs", max_results, next_token)

    def job_document(self, job_id: str) -> dict[str, Any]:
        return {"document": self._job(job_id).document}

    def update_job(self, job_id: str, body: dict[str, Any]) -> None:
        """UpdateJob: description, timeoutConfig and presignedUrlConfig."""
        with self._change():
            job = self._job(job_id)
            if "description" in body:
                job.description = body["description"]
            if "timeoutConfig" in body:
                minutes = (body["timeoutConfig"] or {}).get("inProgressTimeoutInMinutes")
                job.timeout_minutes = None if minutes is None else check_timeout(
                    minutes, "timeoutConfig.inProgressTimeoutInMinutes")
            if "presignedUrlConfig" in body:
                job.presigned_url_config = body["presignedUrlConfig"]
            job.last_updated_at = self.clock()
            self.store.update_job(job)

    def cancel_job(self, job_id: str, reason_code: str | None = None, comment: str | None = None,
                   force: bool = False) -> dict[str, Any]:
        """CancelJob: QUEUED executions become CANCELED, IN_PROGRESS ones too when `force`."""
        now = self.clock()
        with self._change() as changes:
            job = self._job(job_id)
            if job.status == JOB_COMPLETED:
                raise InvalidRequest(f"job {job_id} is COMPLETED and cannot be canceled")
            for execution in self.store.executions_of_job(job_id):
                if execution.status == QUEUED or (execution.status == IN_PROGRESS and force):
                    execution.force_canceled = execution.status == IN_PROGRESS
                    self._set_status(execution, CANCELED, changes, now)
            first = job.status != JOB_CANCELED
            job.status, job.last_updated_at = JOB_CANCELED, now
            job.reason_code = reason_code if reason_code is not None else job.reason_code
            job.comment = comment if comment is not None else job.comment
            job.force_canceled = job.force_canceled or force
            self.store.update_job(job)
            changes.jobs_changed = True
            if first:
                changes.effects.append(self._job_event(job, "canceled", now))
        return {"jobArn": job.arn, "jobId": job_id, **({"description": job.description} if job.description else {})}

    def delete_job(self, job_id: str, force: bool = False) -> None:
        """DeleteJob: a job with executions in progress needs `force`."""
        now = self.clock()
        with self._change() as changes:
            job = self._job(job_id)
            executions = self.store.executions_of_job(job_id)
            if not force and (job.status == JOB_IN_PROGRESS or any(x.status == IN_PROGRESS for x in executions)):
                raise InvalidStateTransition(
                    f"job {job_id} is in progress: cancel it first, or delete it with force=true")
            for execution in executions:
                changes.touch(execution.thing_name)
            self.store.delete_job(job_id)
            changes.jobs_changed = True
            job.status = "DELETION_IN_PROGRESS"
            changes.effects.append(self._job_event(job, "deleted", now))

    def executions_for_job(self, job_id: str, status: str | None = None, max_results: int | None = None,
                           next_token: str | None = None) -> dict[str, Any]:
        self._job(job_id)
        rows = [{"thingArn": self._arn("thing", x.thing_name), "jobExecutionSummary": _control_summary(x)}
                for x in self.store.executions_of_job(job_id) if status is None or x.status == status]
        return _page(rows, "executionSummaries", max_results, next_token)

    def executions_for_thing(self, thing: str, status: str | None = None, job_id: str | None = None,
                             max_results: int | None = None, next_token: str | None = None) -> dict[str, Any]:
        rows = [{"jobId": x.job_id, "jobExecutionSummary": _control_summary(x)}
                for x in self.store.executions_of_thing(thing)
                if (status is None or x.status == status) and (job_id is None or x.job_id == job_id)]
        return _page(rows, "executionSummaries", max_results, next_token)

    def describe_execution(self, job_id: str, thing: str, execution_number: int | None = None) -> dict[str, Any]:
        execution = self._execution(job_id, thing)
        if execution_number is not None and execution_number != execution.execution_number:
            raise ResourceNotFound(f"job {job_id} has no execution number {execution_number} on thing {thing}")
        out: dict[str, Any] = {
            "jobId": job_id, "status": execution.status, "forceCanceled": execution.force_canceled,
            "statusDetails": {"detailsMap": execution.status_details}, "thingArn": self._arn("thing", thing),
            "queuedAt": execution.queued_at, "lastUpdatedAt": execution.last_updated_at,
            "executionNumber": execution.execution_number, "versionNumber": execution.version,
        }
        if execution.started_at is not None:
            out["startedAt"] = execution.started_at
        if execution.deadline is not None:
            out["approximateSecondsBeforeTimedOut"] = max(0, int(execution.deadline - self.clock()))
        return {"execution": out}

    def cancel_execution(self, job_id: str, thing: str, force: bool = False, expected_version: int | None = None,
                         status_details: dict[str, str] | None = None) -> None:
        """CancelJobExecution: QUEUED, or IN_PROGRESS with `force`, becomes CANCELED."""
        details = None if status_details is None else check_status_details(status_details)
        with self._change() as changes:
            execution = self._execution(job_id, thing)
            if expected_version is not None and expected_version != execution.version:
                raise e.VersionConflict(f"the job execution is at version {execution.version}, "
                                        f"not the expected {expected_version}")
            if execution.status in TERMINAL or (execution.status == IN_PROGRESS and not force):
                raise InvalidStateTransition(
                    f"the job execution is {execution.status}: only QUEUED executions can be canceled "
                    "(IN_PROGRESS ones with force=true)")
            execution.force_canceled = execution.status == IN_PROGRESS
            self._set_status(execution, CANCELED, changes, self.clock(), details)

    def delete_execution(self, job_id: str, thing: str, execution_number: int, force: bool = False) -> None:
        """DeleteJobExecution: a terminal execution, or any with `force`."""
        with self._change() as changes:
            execution = self._execution(job_id, thing)
            if execution.execution_number != execution_number:
                raise ResourceNotFound(f"job {job_id} has no execution number {execution_number} on thing {thing}")
            if execution.status not in TERMINAL and not force:
                raise InvalidStateTransition(
                    f"the job execution is {execution.status}: only terminal executions can be deleted without force")
            changes.touch(thing)
            self.store.delete_execution(job_id, thing)

    # -- device API ----------------------------------------------------------------------------------

    def pending(self, thing: str) -> dict[str, Any]:
        """GetPendingJobExecutions."""
        pending = self.store.executions_of_thing(thing, pending_only=True)
        return {"inProgressJobs": [x.summary() for x in pending if x.status == IN_PROGRESS],
                "queuedJobs": [x.summary() for x in pending if x.status == QUEUED]}

    def start_next(self, thing: str, request: dict[str, Any]) -> dict[str, Any]:
        """StartNextPendingJobExecution: the next pending execution, moved to IN_PROGRESS when QUEUED."""
        details = _device_details(request)
        step = _device_step(request)
        now = self.clock()
        with self._change() as changes:
            execution = self._next_execution(thing)
            if execution is None:
                return {}
            if execution.status == QUEUED:
                self._start(execution, step, now)
                self._set_status(execution, IN_PROGRESS, changes, now, details)
        return {"execution": execution.device_view(self._device_document(execution.job_id))}

    def _start(self, execution: Execution, step: int | None, now: float) -> None:
        job = self._job(execution.job_id)
        if job.timeout_minutes is not None:
            execution.progress_deadline = now + job.timeout_minutes * self.minute
        if step is not None:
            execution.step_deadline = now + step * self.minute

    def describe_for_device(self, thing: str, job_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """DescribeJobExecution (`$next` = the next pending execution)."""
        number = request.get("executionNumber")
        if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
            raise JobRejection(e.INVALID_REQUEST, "executionNumber must be a whole number")
        include = request.get("includeJobDocument", True)
        if not isinstance(include, bool):
            raise JobRejection(e.INVALID_REQUEST, "includeJobDocument must be true or false")
        with self.lock:
            execution = self._next_execution(thing) if job_id == NEXT else self.store.execution(job_id, thing)
            if execution is None:
                if job_id == NEXT:
                    return {}
                raise JobRejection(e.RESOURCE_NOT_FOUND, f"job execution {job_id} on {thing} does not exist")
            if number is not None and number != execution.execution_number:
                raise JobRejection(e.RESOURCE_NOT_FOUND, f"job {job_id} has no execution number {number} on {thing}")
            document = self._device_document(execution.job_id) if include else None
            return {"execution": execution.device_view(document)}

    def update_from_device(self, thing: str, job_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """UpdateJobExecution with AWS's state machine, expectedVersion and executionNumber checks."""
        status = request.get("status")
        if status is None:
            raise JobRejection(e.INVALID_REQUEST, "status is required")
        if status not in DEVICE_SETTABLE:
            raise JobRejection(e.INVALID_REQUEST,
                               f"status must be one of {', '.join(DEVICE_SETTABLE)}, not {status!r}")
        details = _device_details(request)
        step = _device_step(request)
        expected = _optional_int(request, "expectedVersion")
        number = _optional_int(request, "executionNumber")
        flags = {k: request.get(k, False) for k in ("includeJobExecutionState", "includeJobDocument")}
        if any(not isinstance(v, bool) for v in flags.values()):
            raise JobRejection(e.INVALID_REQUEST, "includeJobExecutionState and includeJobDocument must be booleans")
        now = self.clock()
        with self._change() as changes:
            execution = self.store.execution(job_id, thing)
            if execution is None or (number is not None and number != execution.execution_number):
                raise JobRejection(e.RESOURCE_NOT_FOUND, f"job execution {job_id} on {thing} does not exist")
            if expected is not None and expected != execution.version:
                raise JobRejection(e.VERSION_MISMATCH, f"the job execution is at version {execution.version}, "
                                   f"not the expected {expected}", execution.state())
            if execution.status in TERMINAL:
                raise JobRejection(e.INVALID_STATE_TRANSITION, f"the job execution is {execution.status} "
                                   f"and cannot become {status}", execution.state())
            if execution.status == QUEUED and status == IN_PROGRESS:
                self._start(execution, step, now)
            elif status == IN_PROGRESS and step is not None:
                execution.step_deadline = now + step * self.minute
            self._set_status(execution, status, changes, now,
                             {**execution.status_details, **details} if details is not None else None)
        out: dict[str, Any] = {}
        if flags["includeJobExecutionState"]:
            out["executionState"] = execution.state()
        if flags["includeJobDocument"]:
            out["jobDocument"] = self._device_document(job_id)
        return out

    # -- time and membership -------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        found = self.store.timing_out()
        return found[0].deadline if found else None

    def expire(self) -> int:
        """Move every IN_PROGRESS execution past its step or in-progress deadline to TIMED_OUT."""
        now = self.clock()
        expired = 0
        with self._change() as changes:
            for execution in self.store.timing_out():
                if execution.deadline is not None and execution.deadline <= now:
                    self._set_status(execution, TIMED_OUT, changes, now)
                    expired += 1
        if expired:
            log.info("event=job_executions_timed_out count=%d", expired)
        return expired

    def reconcile_groups(self) -> int:
        """Continuous jobs: queue executions for things that joined a targeted group; QUEUED executions of
        things that left become REMOVED. Returns how many executions changed."""
        changed = 0
        now = self.clock()
        with self._change() as changes:
            for job in self.store.jobs(JOB_IN_PROGRESS, CONTINUOUS):
                members = set(self._members(job))
                existing = {x.thing_name: x for x in self.store.executions_of_job(job.job_id)}
                for thing in sorted(members - set(existing)):
                    self._queue(job, thing, changes, now)
                    changed += 1
                for thing, execution in existing.items():
                    if thing not in members and execution.status == QUEUED:
                        self._set_status(execution, REMOVED, changes, now)
                        changed += 1
        return changed

    def has_continuous_jobs(self) -> bool:
        return bool(self.store.jobs(JOB_IN_PROGRESS, CONTINUOUS))


def _control_summary(x: Execution) -> dict[str, Any]:
    out: dict[str, Any] = {"status": x.status, "queuedAt": x.queued_at, "lastUpdatedAt": x.last_updated_at,
                           "executionNumber": x.execution_number}
    if x.started_at is not None:
        out["startedAt"] = x.started_at
    return out


def _page(items: list[dict[str, Any]], key: str, max_results: int | None, next_token: str | None) -> dict[str, Any]:
    limit = max_results or MAX_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"maxResults must be between 1 and {MAX_PAGE}, not {limit}")
    start = 0
    if next_token:
        if not next_token.isdigit():
            raise InvalidRequest(f"invalid nextToken {next_token!r}")
        start = int(next_token)
    out: dict[str, Any] = {key: items[start:start + limit]}
    if start + limit < len(items):
        out["nextToken"] = str(start + limit)
    return out


def _device_details(request: dict[str, Any]) -> dict[str, str] | None:
    if request.get("statusDetails") is None:
        return None
    try:
        return check_status_details(request["statusDetails"])
    except InvalidRequest as exc:
        raise JobRejection(e.INVALID_REQUEST, str(exc)) from exc


def _device_step(request: dict[str, Any]) -> int | None:
    if request.get("stepTimeoutInMinutes") is None:
        return None
    try:
        return check_timeout(request["stepTimeoutInMinutes"], "stepTimeoutInMinutes")
    except InvalidRequest as exc:
        raise JobRejection(e.INVALID_REQUEST, str(exc)) from exc


def _optional_int(request: dict[str, Any], name: str) -> int | None:
    value = request.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise JobRejection(e.INVALID_REQUEST, f"{name} must be a whole number, not {value!r}")
    return value
