"""`edgeloop rules …`: topic rules as files in ``<home>/rules/`` (works with or without a running gateway,
which hot-reloads the folder), and `rules test` to see what a rule makes of one message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from gateway.dispatcher.errors import DispatchError
from gateway.dispatcher.journal import iter_dead_letters
from gateway.dispatcher.service import JOURNAL_DIR
from gateway.dispatcher.store import RuleFiles
from gateway.dispatcher.trial import run_trial


def _files(app: Any) -> RuleFiles:
    return RuleFiles.for_config(app.config)


def _json_arg(text: str, what: str) -> Any:
    """JSON given inline or as @file."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise DispatchError(f"cannot read {what} file {text[1:]}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DispatchError(f"{what} is not valid JSON: {exc}") from None


def _payload_from_options(file: str | None, sql: str | None, actions: tuple[str, ...], error_action: str | None,
                          description: str | None, sql_version: str | None, disabled: bool) -> dict[str, Any]:
    if (file is None) == (sql is None):
        raise DispatchError("give exactly one of --file (a topicRulePayload JSON file) or --sql")
    if file is not None:
        payload = _json_arg("@" + file, "--file")
        if not isinstance(payload, dict):
            raise DispatchError("--file must hold a topicRulePayload JSON object")
        if actions or error_action or description or sql_version:
            raise DispatchError("--action, --error-action, --description and --sql-version go with --sql, not --file")
    else:
        payload = {"sql": sql, "actions": [_json_arg(a, "--action") for a in actions]}
        if error_action is not None:
            payload["errorAction"] = _json_arg(error_action, "--error-action")
        if description is not None:
            payload["description"] = description
        if sql_version is not None:
            payload["awsIotSqlVersion"] = sql_version
    if disabled:
        payload["ruleDisabled"] = True
    return payload


@click.group()
def rules() -> None:
    """Topic rules (AWS IoT SQL) in <home>/rules/*.json; a running gateway picks changes up within a second."""


@rules.command("create")
@click.argument("name")
@click.option("--file", "file", type=click.Path(dir_okay=False), help="A topicRulePayload JSON file.")
@click.option("--sql", help="The rule's SQL, e.g. \"SELECT * FROM 'sensors/+/telemetry'\".")
@click.option("--action", "actions", multiple=True,
              help='An action as JSON (repeatable), e.g. \'{"kinesis": {"streamName": "s", "roleArn": "arn:…"}}\'; '
                   "@file reads it from a file.")
@click.option("--error-action", help="The errorAction as JSON (or @file).")
@click.option("--description")
@click.option("--sql-version", help="awsIotSqlVersion: 2015-10-08 (default), 2016-03-23 or beta.")
@click.option("--disabled", is_flag=True, help="Create the rule disabled.")
@click.option("--replace", is_flag=True, help="Replace the rule if it exists.")
@click.pass_obj
def create(app: Any, name: str, file: str | None, sql: str | None, actions: tuple[str, ...], error_action: str | None,
           description: str | None, sql_version: str | None, disabled: bool, replace: bool) -> None:
    """Validate and write rule NAME (atomically)."""
    payload = _payload_from_options(file, sql, actions, error_action, description, sql_version, disabled)
    stored = _files(app).create(name, payload, replace=replace)
    click.echo(f"rule {stored.name} {'replaced' if replace else 'created'} "
               f"({'disabled' if stored.rule.disabled else 'enabled'}, FROM {stored.rule.topic_filter!r}, "
               f"{len(stored.rule.actions)} action(s))")


@rules.command("list")
@click.pass_obj
def list_rules(app: Any) -> None:
    """Every rule file: name, state, topic filter, actions. Invalid files are listed with their error."""
    files = _files(app)
    good, bad = files.read_all()
    rows = [(s.name, "disabled" if s.rule.disabled else "enabled", s.rule.topic_filter or "(basic ingest)",
             ",".join(a.kind for a in s.rule.actions) or "-") for s in good]
    rows += [(name, "INVALID", str(exc), "") for name, exc in bad.items()]
    if not rows:
        click.echo(f"no rules in {files.directory}")
        return
    width = max(len(r[0]) for r in rows)
    for name, state, pattern, kinds in sorted(rows):
        click.echo(f"{name:<{width}}  {state:<8}  {pattern}  {kinds}".rstrip())


@rules.command("get")
@click.argument("name")
@click.pass_obj
def get(app: Any, name: str) -> None:
    """Print rule NAME as GetTopicRule's `rule` object (JSON)."""
    stored = _files(app).read(name)
    click.echo(json.dumps({**stored.rule.describe(), "createdAt": stored.created_at}, indent=2))


@rules.command("enable")
@click.argument("name")
@click.pass_obj
def enable(app: Any, name: str) -> None:
    """Enable rule NAME."""
    _files(app).set_disabled(name, False)
    click.echo(f"rule {name} enabled")


@rules.command("disable")
@click.argument("name")
@click.pass_obj
def disable(app: Any, name: str) -> None:
    """Disable rule NAME (kept, never matched)."""
    _files(app).set_disabled(name, True)
    click.echo(f"rule {name} disabled")


@rules.command("delete")
@click.argument("name")
@click.pass_obj
def delete(app: Any, name: str) -> None:
    """Delete rule NAME."""
    _files(app).delete(name)
    click.echo(f"rule {name} deleted")


@rules.command("dead-letters")
@click.pass_obj
def dead_letters(app: Any) -> None:
    """Print the dead-letter entries (messages no action nor errorAction could deliver), one JSON per line."""
    for entry in iter_dead_letters(app.config.home / JOURNAL_DIR):
        click.echo(json.dumps(entry))


@rules.command("test")
@click.argument("name", required=False)
@click.option("--sql", help="Test this SQL instead of a stored rule.")
@click.option("--sql-version", help="awsIotSqlVersion for --sql.")
@click.option("--action", "actions", multiple=True, help="Actions (JSON or @file) to render with --sql.")
@click.option("--topic", required=True, help="The topic the message is published on.")
@click.option("--payload", required=True, help="The message payload: JSON text, or @file for a file's bytes.")
@click.option("--client-id", help="clientid() of the publisher.")
@click.option("--principal", help="principal() of the publisher (a certificate id).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (as the admin API answers).")
@click.pass_obj
def test(app: Any, name: str | None, sql: str | None, sql_version: str | None, actions: tuple[str, ...], topic: str,
         payload: str, client_id: str | None, principal: str | None, as_json: bool) -> None:
    """Evaluate rule NAME (or --sql) on one message; print the SELECT output and every rendered action."""
    if (name is None) == (sql is None):
        raise DispatchError("give a rule NAME or --sql, not both")
    if name is not None:
        rule = _files(app).read(name).rule
    else:
        doc: dict[str, Any] = {"sql": sql, "actions": [_json_arg(a, "--action") for a in actions]}
        if sql_version:
            doc["awsIotSqlVersion"] = sql_version
        rule = _files(app).parse("test", doc)
    trial = run_trial(rule, topic, _payload_bytes(payload), client_id=client_id, principal=principal,
                      account_id=app.config.aws.account_id)
    if as_json:
        click.echo(json.dumps(trial.to_dict(), ensure_ascii=False))
        return
    for line in trial.lines():
        click.echo(line)


def _payload_bytes(payload: str) -> bytes:
    if payload.startswith("@"):
        try:
            return Path(payload[1:]).read_bytes()
        except OSError as exc:
            raise DispatchError(f"cannot read payload file {payload[1:]}: {exc.strerror}") from None
    return payload.encode("utf-8")
