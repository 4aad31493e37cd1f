"""Show untrusted text (file names, metadata values) without letting it break a terminal, JSON or HTML.

File names may hold newlines, ANSI escapes, right-to-left overrides or bytes that are not UTF-8
(Python keeps those as lone surrogates). Metadata values are attacker-controlled too.
"""

from __future__ import annotations

import unicodedata

_ESCAPED_BYTE = range(0xDC80, 0xDD00)
"""Lone surrogates that `os.fsdecode` uses for bytes that are not valid UTF-8."""


def _escape(ch: str) -> str:
    code = ord(ch)
    if code in _ESCAPED_BYTE:
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str) -> str:
    """Text safe for a terminal: control, format and unassigned characters and raw bytes become escapes.

    Newlines, ANSI escape sequences and bidirectional overrides cannot reach the terminal; the result is
    always encodable as UTF-8.
    """
    return "".join(_escape(ch) if unicodedata.category(ch).startswith("C") else ch for ch in text)


def unicode_clean(text: str) -> str:
    """Text encodable as UTF-8: lone surrogates (undecodable file-name bytes) become visible escapes.

    Other characters are kept, so JSON and HTML writers can escape them their own way.
    """
    if text.isascii():
        return text
    return "".join(_escape(ch) if unicodedata.category(ch) == "Cs" else ch for ch in text)


def excerpt(data: bytes | str, limit: int = 80) -> str:
    """A short printable excerpt of a metadata value."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = printable(text.strip("\x00 "))
    return text if len(text) <= limit else text[: limit - 1] + "…"
