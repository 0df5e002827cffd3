"""`edgeloop config …`: inspect the effective configuration."""

from __future__ import annotations

import click

from edgeloop.cli import AppContext
from edgeloop.config import to_toml


@click.group()
def config() -> None:
    """Inspect the effective configuration (defaults < edgeloop.toml < flags)."""


@config.command("show")
@click.pass_obj
def show(app: AppContext) -> None:
    """Print the effective configuration as TOML."""
    click.echo(to_toml(app.config), nl=False)
