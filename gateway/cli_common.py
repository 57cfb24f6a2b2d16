"""What the ``telecare`` commands share: failing with a message a person can act on, and the settings."""

from __future__ import annotations

import typer

from gateway.config import ConfigError, Settings, load_settings

EXIT_BAD = 2  # bad input or configuration: the message says what to change


def fail(message: str, code: int = EXIT_BAD) -> typer.Exit:
    """Print ``message`` on standard error; raise what this returns."""
    typer.echo(message, err=True)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as e:
        raise fail(str(e)) from None
