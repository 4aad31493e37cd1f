"""The `blur` command line: the Typer app (`app.py`) and one module per command that needs more than parsing.

Thin by design: parse options, build settings, call the library, render results, return the exit code.
"""

from blur.cli.app import app

__all__ = ["app"]
