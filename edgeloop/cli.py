"""The `edgeloop` command. The root stays thin: each package owns its sub-commands, loaded on demand."""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from edgeloop import __version__
from edgeloop.config import Config, load_config
from edgeloop.errors import EdgeloopError

# sub-command name -> "module:attribute" of a click command or group
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "config": ("edgeloop.config_cli:config", "show the effective configuration"),
    "demo": ("devices.demo:demo", "run the demo: gateway, provisioned things, devices over mutual TLS"),
    "gateway": ("gateway.cli:gateway", "run the gateway (MQTT broker, shadows, rules, AWS-compatible API)"),
    "kinesis": ("gateway.sinks.kinesis.cli:kinesis", "emulated Kinesis streams: ls, tail"),
    "pki": ("gateway.identity.cli:pki", "the gateway's certificate authority"),
    "s3": ("gateway.sinks.s3.cli:s3", "emulated S3 buckets and objects: ls, cat, put, mb"),
    "sinks": ("gateway.sinks.cli:sinks", "every emulated stream, queue, bucket and delivery stream"),
    "sqs": ("gateway.sinks.sqs.cli:sqs", "emulated SQS queues: ls, peek, receive, send"),
    "things": ("gateway.identity.cli:things", "things: create with a ready device identity, list, describe"),
    "certs": ("gateway.identity.cli:certs", "device certificates: issue, register, activate, revoke"),
    "policies": ("gateway.identity.cli:policies", "AWS IoT policies and their versions"),
    "groups": ("gateway.identity.cli:groups", "static thing groups"),
    "types": ("gateway.identity.cli:thing_types", "thing types"),
    "cas": ("gateway.identity.cli:cas", "external CAs (bring your own CA)"),
    "rules": ("gateway.dispatcher.cli:rules", "topic rules (AWS IoT SQL): create, list, enable, test"),
    "jobs": ("gateway.jobs.cli:jobs", "IoT jobs for things and thing groups: create, list, cancel, delete"),
    "provisioning": ("gateway.provisioning.cli:provisioning", "fleet provisioning templates (provisioning by claim)"),
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported only when used, so `edgeloop --help` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr = entry[0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class AppContext:
    """What every sub-command gets through `click.pass_obj`: the effective configuration."""

    def __init__(self, config_path: str | None, overrides: dict[str, Any]) -> None:
        self._config_path = config_path
        self._overrides = overrides
        self._config: Config | None = None

    def apply_overrides(self, overrides: dict[str, Any]) -> None:
        """Add sub-command flags (dotted keys; None = not given) before the config is first read."""
        self._overrides.update({k: v for k, v in overrides.items() if v is not None})
        self._config = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self._config_path, self._overrides)
        return self._config


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeloop")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config file.")
@click.option(
    "--home", type=click.Path(file_okay=False), help="Data directory (default: $EDGELOOP_HOME, else ./.edgeloop).")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.pass_context
def root(ctx: click.Context, config_path: str | None, home: str | None, verbose: int) -> None:
    """edgeloop: a local AWS-IoT-like edge gateway, fleet simulator and HIL rig."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    ctx.obj = AppContext(config_path, {"data_dir": home})


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes print one line and exit non-zero, never a traceback."""
    try:
        root.main(args=argv, prog_name="edgeloop", standalone_mode=False)
    except EdgeloopError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
