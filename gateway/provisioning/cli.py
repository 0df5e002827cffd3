"""`edgeloop provisioning ...`: fleet-provisioning templates of the running gateway (its `iot` control plane)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from gateway.jobs.cli import iot_request

DEFAULT_ROLE = "arn:aws:iam::000000000000:role/edgeloop-provisioning"


@click.group()
def provisioning() -> None:
    """Fleet provisioning by claim: the templates devices register with."""


@provisioning.command("create")
@click.argument("name")
@click.argument("template_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--description", help="What the template is for.")
@click.option("--disabled", is_flag=True, help="Create it disabled (devices cannot use it yet).")
@click.option("--role-arn", default=DEFAULT_ROLE, show_default=True, help="provisioningRoleArn (recorded only).")
@click.pass_obj
def create(app: Any, name: str, template_file: str, description: str | None, disabled: bool, role_arn: str) -> None:
    """Create a template from a JSON file (enabled unless --disabled); prints its ARN."""
    body: dict[str, Any] = {"templateName": name, "templateBody": Path(template_file).read_text(),
                            "enabled": not disabled, "provisioningRoleArn": role_arn}
    if description:
        body["description"] = description
    click.echo(iot_request(app.config, "POST", "/provisioning-templates", body=body)["templateArn"])


@provisioning.command("list")
@click.pass_obj
def list_templates(app: Any) -> None:
    """List templates: name, enabled, description."""
    query: dict[str, str] = {}
    while True:
        page = iot_request(app.config, "GET", "/provisioning-templates", query)
        for t in page.get("templates", []):
            state = "enabled" if t["enabled"] else "disabled"
            click.echo(f"{t['templateName']}\t{state}\t{t.get('description', '')}")
        if not page.get("nextToken"):
            return
        query = {"nextToken": page["nextToken"]}


@provisioning.command("describe")
@click.argument("name")
@click.pass_obj
def describe(app: Any, name: str) -> None:
    """Show a template with its body."""
    click.echo(json.dumps(iot_request(app.config, "GET", f"/provisioning-templates/{quote(name, safe='')}"),
                          indent=2, sort_keys=True, default=str))


@provisioning.command("enable")
@click.argument("name")
@click.option("--off", is_flag=True, help="Disable instead.")
@click.pass_obj
def enable(app: Any, name: str, off: bool) -> None:
    """Enable (or with --off disable) a template."""
    iot_request(app.config, "PATCH", f"/provisioning-templates/{quote(name, safe='')}", body={"enabled": not off})
    click.echo(f"{name} {'disabled' if off else 'enabled'}")


@provisioning.command("delete")
@click.argument("name")
@click.pass_obj
def delete(app: Any, name: str) -> None:
    """Delete a template."""
    iot_request(app.config, "DELETE", f"/provisioning-templates/{quote(name, safe='')}")
    click.echo(f"deleted {name}")
