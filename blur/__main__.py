"""`python -m blur`."""

from blur.cli import app

app(prog_name="blur")
