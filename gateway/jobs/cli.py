"""`edgeloop jobs ...`: IoT jobs of the running gateway, through its `iot` control plane (SigV4-signed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from edgeloop.config import Config
from gateway.awsapi.client import AwsClient
from gateway.awsapi.errors import AwsError

_KINDS = {"thing": "thing", "group": "thinggroup", "thinggroup": "thinggroup"}


def iot_request(config: Config, method: str, path: str, query: dict[str, str] | None = None,
                body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call one restJson operation of the gateway's `iot` control plane; AwsError on failure."""
    client = AwsClient.for_config(config)
    payload = json.dumps(body).encode() if body is not None else b""
    status, headers, data = client.request("iot", method, path, query, payload,
                                           {"Content-Type": "application/json"} if body is not None else None)
    parsed: dict[str, Any] = json.loads(data) if data else {}
    if status >= 300:
        code = headers.get("x-amzn-ErrorType") or headers.get("X-Amzn-Errortype") or "UnknownError"
        raise AwsError(code.split(":")[0], str(parsed.get("message", "")), status)
    return parsed


def target_arns(config: Config, spec: str) -> list[str]:
    """`thing/a,group/g` (or full ARNs) -> target ARNs."""
    arns = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        if item.startswith("arn:"):
            arns.append(item)
            continue
        kind, _, name = item.partition("/")
        if kind not in _KINDS or not name:
            raise click.BadParameter(f"{item!r}: give thing/<name>, group/<name> or an ARN", param_hint="--targets")
        arns.append(f"arn:aws:iot:{config.aws.region}:{config.aws.account_id}:{_KINDS[kind]}/{name}")
    if not arns:
        raise click.BadParameter("give at least one target", param_hint="--targets")
    return arns


def _echo(value: dict[str, Any]) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


@click.group()
def jobs() -> None:
    """IoT jobs: documents sent to things and thing groups, and their executions."""


@jobs.command("create")
@click.argument("job_id")
@click.option("--targets", required=True, help="Comma-separated thing/<name>, group/<name> or ARNs.")
@click.option("--document", "document_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The job document (a JSON file).")
@click.option("--description", help="What the job does.")
@click.option("--continuous", is_flag=True, help="Also run on things added to a targeted group later.")
@click.option("--timeout-minutes", type=click.IntRange(1, 10080), help="In-progress timeout of each execution.")
@click.pass_obj
def create(app: Any, job_id: str, targets: str, document_file: str, description: str | None, continuous: bool,
           timeout_minutes: int | None) -> None:
    """Create a job (prints its ARN)."""
    body: dict[str, Any] = {"targets": target_arns(app.config, targets), "document": Path(document_file).read_text(),
                            "targetSelection": "CONTINUOUS" if continuous else "SNAPSHOT"}
    if description:
        body["description"] = description
    if timeout_minutes:
        body["timeoutConfig"] = {"inProgressTimeoutInMinutes": timeout_minutes}
    click.echo(iot_request(app.config, "PUT", f"/jobs/{quote(job_id, safe='')}", body=body)["jobArn"])


@jobs.command("list")
@click.option("--status", type=click.Choice(["IN_PROGRESS", "CANCELED", "COMPLETED"]))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_jobs(app: Any, status: str | None, as_json: bool) -> None:
    """List jobs, newest first."""
    query = {"status": status} if status else {}
    found: list[dict[str, Any]] = []
    while True:
        page = iot_request(app.config, "GET", "/jobs", query)
        found.extend(page.get("jobs", []))
        if not page.get("nextToken"):
            break
        query = {**query, "nextToken": page["nextToken"]}
    if as_json:
        _echo({"jobs": found})
        return
    for job in found:
        click.echo(f"{job['jobId']}\t{job['status']}\t{job['targetSelection']}")


@jobs.command("describe")
@click.argument("job_id")
@click.pass_obj
def describe(app: Any, job_id: str) -> None:
    """Show a job with its execution counts."""
    _echo(iot_request(app.config, "GET", f"/jobs/{quote(job_id, safe='')}")["job"])


@jobs.command("document")
@click.argument("job_id")
@click.pass_obj
def document(app: Any, job_id: str) -> None:
    """Print a job's document."""
    click.echo(iot_request(app.config, "GET", f"/jobs/{quote(job_id, safe='')}/job-document")["document"])


@jobs.command("executions")
@click.argument("job_id")
@click.pass_obj
def executions(app: Any, job_id: str) -> None:
    """List a job's executions: thing, status, execution number."""
    page = iot_request(app.config, "GET", f"/jobs/{quote(job_id, safe='')}/things")
    for row in page.get("executionSummaries", []):
        summary = row["jobExecutionSummary"]
        click.echo(f"{row['thingArn'].rpartition('/')[2]}\t{summary['status']}\t{summary['executionNumber']}")


@jobs.command("cancel")
@click.argument("job_id")
@click.option("--force", is_flag=True, help="Also cancel executions already IN_PROGRESS.")
@click.option("--comment", help="Why the job was canceled.")
@click.pass_obj
def cancel(app: Any, job_id: str, force: bool, comment: str | None) -> None:
    """Cancel a job: its QUEUED executions (and IN_PROGRESS ones with --force) become CANCELED."""
    query = {"force": "true"} if force else {}
    iot_request(app.config, "PUT", f"/jobs/{quote(job_id, safe='')}/cancel", query,
                {"comment": comment} if comment else {})
    click.echo(f"canceled {job_id}")


@jobs.command("delete")
@click.argument("job_id")
@click.option("--force", is_flag=True, help="Delete even while executions are in progress.")
@click.pass_obj
def delete(app: Any, job_id: str, force: bool) -> None:
    """Delete a job and its executions."""
    iot_request(app.config, "DELETE", f"/jobs/{quote(job_id, safe='')}", {"force": "true"} if force else {})
    click.echo(f"deleted {job_id}")
