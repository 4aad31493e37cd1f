"""What `blur review` does once options are parsed: load the batch, start the local app, print its URL."""

from __future__ import annotations

import contextlib
import webbrowser
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from blur.batch.state import inside, open_state
from blur.engine import build_engine
from blur.errors import BlurError
from blur.textsafe import printable


def _safe(text: str) -> str:
    return escape(printable(text))


def run_review(
    output: Path,
    *,
    report: Path | None,
    state_dir: Path | None,
    html: Path | None,
    port: int,
    browser: bool,
    console: Console,
    write: Callable[[str], None],
) -> int:
    """Serve the review app for the batch written to `output` until Ctrl-C; return the exit status."""
    from blur.review.batch import load_batch  # noqa: PLC0415 - the server stack only for this command
    from blur.review.serve import prepare  # noqa: PLC0415

    if not output.is_dir():
        console.print(f"[red]error:[/red] {_safe(str(output))}: no such output folder")
        return 2
    for option, path in (("--report", report), ("--html", html)):
        if path is not None and inside(path, output):
            console.print(
                f"[red]error:[/red] {option} {_safe(str(path))} lies inside the output folder; put it elsewhere"
            )
            return 2
    try:
        state = open_state(output, state_dir, create=False)
        batch = load_batch(state, report, html)
        engine = build_engine(batch.record.settings)
        served = prepare(batch, engine, port)
    except (BlurError, ValueError) as exc:
        console.print(f"[red]error:[/red] {_safe(str(exc))}")
        return 1
    except OSError as exc:
        console.print(f"[red]error:[/red] cannot listen on 127.0.0.1:{port}: {_safe(exc.strerror or str(exc))}")
        return 1
    write(served.url)
    console.print(
        f"[dim]reviewing {len(batch.order)} file(s) of {_safe(str(output))}; only this machine can connect; "
        "Ctrl-C stops the server[/dim]"
    )
    if browser:
        webbrowser.open(served.url)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it handled, once stopped cleanly
        served.server.run(sockets=[served.sock])
    console.print("[dim]review server stopped[/dim]")
    return 0
