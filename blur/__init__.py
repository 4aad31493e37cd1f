"""blur: find every face in photos and videos and make it unrecognisable."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("blur")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"
