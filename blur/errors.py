"""Exceptions raised by blur. Every message names the file and the reason."""

from __future__ import annotations


class BlurError(Exception):
    """Base class of every error blur raises on purpose."""


class UnsupportedMediaError(BlurError):
    """The file is not a photo or video that blur handles."""


class MediaReadError(BlurError):
    """The file could not be read or decoded completely."""


class MediaWriteError(BlurError):
    """The output could not be written."""


class ModelError(BlurError):
    """A detector model is missing, altered or could not be loaded."""


class BackendUnavailableError(BlurError):
    """A detector backend's runtime is not installed."""

    def __init__(self, backend: str, hint: str) -> None:
        super().__init__(f"detector backend {backend!r} is unavailable: {hint}")
        self.backend = backend
        self.hint = hint


class DetectionError(BlurError):
    """Detection did not run on a frame, so nothing may be written for it."""


def reason_of(exc: BaseException, *names: object) -> str:
    """`exc`'s message for a report entry that already names the file: a leading "<name>: " naming one
    of `names` (the source, the output) is dropped, so the file is named once."""
    text = str(exc)
    for name in names:
        prefix = f"{name}: "
        if name is not None and text.startswith(prefix):
            return text[len(prefix) :]
    return text
