"""Shim so `python cli.py` works from a checkout; the app lives in blur/cli.py."""

from blur.cli import app

if __name__ == "__main__":
    app(prog_name="blur")
