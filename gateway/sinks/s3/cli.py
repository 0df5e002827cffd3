"""`edgeloop s3 ...`: look at the emulated S3 of a running gateway through its AWS-compatible API."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import click

from gateway.awsapi.client import AwsClient
from gateway.awsapi.errors import AwsError


def _client(app: Any) -> AwsClient:
    return AwsClient.for_config(app.config)


def _strip(root: ET.Element) -> ET.Element:
    for el in root.iter():
        el.tag = el.tag.rsplit("}", 1)[-1]
    return root


def call(client: AwsClient, method: str, path: str, query: dict[str, str] | None = None, body: bytes = b"",
         headers: dict[str, str] | None = None) -> tuple[dict[str, str], bytes]:
    """One S3 request; raises AwsError with the S3 error code on failure."""
    status, response_headers, data = client.request("s3", method, path, query, body, headers)
    if status >= 300:
        code, message = str(status), ""
        if data:
            try:
                error = _strip(ET.fromstring(data))
                code, message = error.findtext("Code") or code, error.findtext("Message") or ""
            except ET.ParseError:
                message = data[:200].decode(errors="replace")
        raise AwsError(code, f"{message} ({method} {path})", status)
    return response_headers, data


def list_buckets(client: AwsClient) -> list[str]:
    _, data = call(client, "GET", "/")
    return [b.findtext("Name") or "" for b in _strip(ET.fromstring(data)).iter("Bucket")]


def _split(target: str) -> tuple[str, str]:
    bucket, _, key = target.removeprefix("s3://").partition("/")
    return bucket, key


@click.group()
def s3() -> None:
    """Emulated S3 of the running gateway."""


@s3.command("ls")
@click.argument("target", required=False, default="")
@click.option("--recursive", "-r", is_flag=True, help="List every key, not one level of the hierarchy.")
@click.pass_obj
def ls(app: Any, target: str, recursive: bool) -> None:
    """List buckets, or the keys of BUCKET[/PREFIX] (sizes, ETags, times)."""
    client = _client(app)
    if not target:
        for name in list_buckets(client):
            click.echo(name)
        return
    bucket, prefix = _split(target)
    query = {"list-type": "2", "prefix": prefix}
    if not recursive:
        query["delimiter"] = "/"
    while True:
        _, data = call(client, "GET", f"/{bucket}", query)
        page = _strip(ET.fromstring(data))
        for p in page.iter("CommonPrefixes"):
            click.echo(f"{'PRE':>28}  {p.findtext('Prefix')}")
        for c in page.iter("Contents"):
            click.echo(f"{c.findtext('LastModified')}  {c.findtext('Size'):>10}  {c.findtext('Key')}")
        token = page.findtext("NextContinuationToken")
        if page.findtext("IsTruncated") != "true" or not token:
            return
        query["continuation-token"] = token


@s3.command("cat")
@click.argument("target")
@click.option("--version-id", help="A specific version.")
@click.pass_obj
def cat(app: Any, target: str, version_id: str | None) -> None:
    """Write the object BUCKET/KEY to stdout."""
    bucket, key = _split(target)
    _, data = call(_client(app), "GET", f"/{bucket}/{key}", {"versionId": version_id} if version_id else None)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@s3.command("put")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target")
@click.option("--content-type", default="binary/octet-stream", show_default=True)
@click.pass_obj
def put(app: Any, source: Path, target: str, content_type: str) -> None:
    """Upload the file SOURCE as BUCKET/KEY (small files: one PutObject)."""
    bucket, key = _split(target)
    headers, _ = call(_client(app), "PUT", f"/{bucket}/{key}", body=source.read_bytes(),
                      headers={"Content-Type": content_type})
    click.echo(f"{bucket}/{key}\t{headers.get('ETag', '')}")


@s3.command("mb")
@click.argument("bucket")
@click.pass_obj
def mb(app: Any, bucket: str) -> None:
    """Create BUCKET."""
    call(_client(app), "PUT", f"/{bucket.removeprefix('s3://')}")
    click.echo(f"created {bucket}")
