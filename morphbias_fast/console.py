"""Messages for the person at the terminal, on stderr so that stdout keeps the results: `say` for what a
long run is doing, `warn` for a result that is weaker than asked for."""
from __future__ import annotations

import click


def say(msg: str) -> None:
    click.echo(click.style(f"[morphbias-fast] {msg}", fg="cyan"), err=True)


def warn(msg: str) -> None:
    click.echo(click.style(f"warning: {msg}", fg="yellow"), err=True)
