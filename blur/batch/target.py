"""Where a batch reads and writes: local paths or URLs (object storage), the output's state folder,
and the jobs.

With only local paths nothing here imports fsspec: the batch is `blur.batch.discover`'s, with the
output folder's state folder (`blur.batch.state`). With a URL anywhere, `blur.batch.remote` lists and
classifies the objects; a remote output's state folder (journal and lock) is a private local folder
named after its URL, never in the bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from blur.batch.discover import discover
from blur.batch.state import StateDir, attach, open_state
from blur.jobs import Job


def is_url(text: str) -> bool:
    """Whether a command-line path is a URL (`scheme://…`)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme[:1].isalpha() and scheme.replace("+", "").replace(".", "").replace("-", "").isalnum()


@dataclass(frozen=True, slots=True)
class Target:
    """The inputs and the output as given, and as local paths where they are (`file://` included)."""

    inputs: list[str]
    output: str
    local_inputs: list[Path] | None
    local_output: Path | None

    @property
    def local(self) -> bool:
        """Whether every input and the output are local paths."""
        return self.local_inputs is not None and self.local_output is not None


def target(paths: Sequence[Path | str], output: Path | str) -> Target:
    """The batch's inputs and output.

    Raises:
        BlurError: a `file://` URL names another machine.
    """
    inputs, out = [str(p) for p in paths], str(output)
    if not any(is_url(x) for x in [*inputs, out]):
        return Target(inputs, out, [Path(p) for p in paths], Path(output))
    from blur.batch.remote import local_path  # noqa: PLC0415 - URL support only when a URL is given

    locals_ = [local_path(p) for p in inputs]
    local_inputs = None if any(p is None for p in locals_) else [p for p in locals_ if p is not None]
    return Target(inputs, out, local_inputs, local_path(out))


def state_of(where: Target, override: Path | None) -> StateDir:
    """The output's state folder: the local output folder's, or a private one named after the output URL.

    Raises:
        StateError: it cannot be created or is not private.
    """
    if where.local_output is not None:
        return open_state(where.local_output, override)
    from blur.batch.remote import remote_state  # noqa: PLC0415

    return remote_state(where.output, override)


def discover_jobs(where: Target, state: StateDir) -> list[Job]:
    """Every input file's job, with the state folder's scratch and detection records for local outputs.

    Raises:
        RemoteError: a filesystem cannot be reached.
    """
    if where.local_inputs is not None and where.local_output is not None:
        return attach(discover(where.local_inputs, where.local_output, (state.path,)), state)
    from blur.batch.remote import discover_urls  # noqa: PLC0415

    jobs = discover_urls(where.inputs, where.output, (state.path,))
    return attach(jobs, state) if where.local_output is not None else jobs
