"""How a command fails: one ``error: ...`` line on stderr and an exit code (2 unless told)."""

from __future__ import annotations

import typer

import flows.cli.render as render


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr; return the :class:`typer.Exit` for the caller to raise."""
    render.err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def one_line(err: Exception) -> str:
    """An exception as one line; a pydantic error as ``field: message; field: message``."""
    from pydantic import ValidationError

    if isinstance(err, ValidationError):
        def line(e: dict) -> str:
            # our validators' own message, without pydantic's "Value error, " prefix
            raised = e.get("ctx", {}).get("error")
            text = str(raised) if isinstance(raised, ValueError) else e["msg"]
            where = ".".join(map(str, e["loc"]))
            return f"{where}: {text}" if where else text

        return "; ".join(line(e) for e in err.errors())
    return str(err)
