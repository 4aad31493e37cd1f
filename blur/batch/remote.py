"""Inputs and outputs in object storage: fsspec URLs (`s3://bucket/shoot`, `gs://…`, `file://…`).

The batch rules hold on URLs as on folders: an input folder (prefix) is listed recursively and
mirrored under the output; the output may lie inside an input (it is then not read) but not the
other way round; an output never replaces an input; two inputs mapping to one output both fail.
Credentials come only from each filesystem's own configuration (environment, config files,
instance roles); a URL that carries them is refused. `file://` URLs are local paths and go through
`blur.batch.discover`'s rules (no links followed, no FIFOs). `blur.batch.staging` moves the bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from blur.batch.discover import discover, finish_jobs, verdict
from blur.batch.state import APP_FOLDER, StateDir, _private_dir, user_state_home
from blur.batch.workfiles import is_sidecar
from blur.corrections import FOLDER_SIDECAR, SIDECAR_SUFFIX
from blur.errors import BlurError
from blur.jobs import Job, Plan, Remote
from blur.media.kinds import Kind, Sniffed, extension_kind, sniff_bytes

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

_IDENTITY_KEYS = ("ETag", "etag", "md5Hash", "generation", "mtime", "LastModified", "created")
"""Metadata a filesystem's listing may give that changes when the object's bytes change."""

_HEAD = 64


class RemoteError(BlurError):
    """An object store cannot be reached, or a URL is not acceptable."""


def is_url(text: str) -> bool:
    """Whether `text` is a URL (`scheme://…`) rather than a local path."""
    return bool(_SCHEME.match(text))


def local_path(text: str) -> Path | None:
    """The local path a `file://` URL or plain path names; None for other URLs."""
    if not is_url(text):
        return Path(text)
    parts = urlsplit(text)
    if parts.scheme.lower() != "file":
        return None
    if parts.netloc not in ("", "localhost"):
        msg = f"{text}: a file:// URL must name a file on this machine"
        raise RemoteError(msg)
    return Path(unquote(parts.path))


def url_problem(url: str) -> str | None:
    """Why `url` is refused (credentials in it), or None."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return f"{_hide(url)}: credentials in a URL are refused; use the filesystem's own configuration"
    if parts.query or parts.fragment:
        return f"{url}: a URL with a query or fragment is not supported"
    return None


def _hide(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://…@{host}{parts.path}"


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of `url` and the path within it (credentials from its own configuration).

    Raises:
        RemoteError: fsspec or the filesystem's package is not installed.
    """
    try:
        from fsspec.core import url_to_fs  # noqa: PLC0415 - only for URLs (pip install "blur[cluster]")
    except ImportError as exc:
        msg = f'{url}: URLs need fsspec: pip install "blur[cluster]"'
        raise RemoteError(msg) from exc
    try:
        fs, path = url_to_fs(url)
    except (ImportError, ValueError) as exc:
        msg = f"{url}: cannot open this kind of URL: {exc}"
        raise RemoteError(msg) from exc
    return fs, str(path)


def _full(fs: Any, path: str) -> str:
    return str(fs.unstrip_protocol(path))


def _same_fs(a: str, b: str) -> bool:
    return urlsplit(a).scheme.lower() == urlsplit(b).scheme.lower()


def _norm(url: str) -> str:
    return url.rstrip("/")


def _within(url: str, root: str) -> bool:
    return _same_fs(url, root) and (_norm(url) == _norm(root) or _norm(url).startswith(_norm(root) + "/"))


def identity(info: dict[str, Any]) -> str:
    """Size and version of an object from its listing (what changes when its bytes change)."""
    version = next((str(info[k]) for k in _IDENTITY_KEYS if info.get(k) not in (None, "")), "")
    return f"{info.get('size', '')}:{version.strip(chr(34))}"


def remote_state(output_url: str, override: Path | None = None) -> StateDir:
    """The private local state folder of a remote output (its journal and lock): `override`, or one in
    the user state directory named after the URL. Never in the bucket: the journal holds hashes of the
    originals and face positions.

    Raises:
        StateError: it cannot be created, is a link, or is not this user's.
    """
    digest = hashlib.sha256(_norm(output_url).encode()).hexdigest()[:16]
    path = Path(os.path.abspath(override or user_state_home() / APP_FOLDER / f"remote-{digest}"))
    _private_dir(path.parent)
    _private_dir(path)
    return StateDir(path, path)


def usage_problem(inputs: list[str], output: str) -> str | None:
    """A problem with the inputs and output that stops the run before anything is read (exit 2)."""
    for item in [*inputs, output]:
        problem = url_problem(item) if is_url(item) else None
        if problem:
            return problem
    out_local = local_path(output)
    for item in inputs:
        item_local = local_path(item)
        if item_local is not None:
            if not item_local.exists() and not item_local.is_symlink():
                return f"{item}: no such file or folder"
            continue
        fs, path = filesystem(item)
        if not fs.exists(path):
            return f"{item}: no such file or folder"
        if out_local is None and fs.isdir(path):
            if _norm(item) == _norm(output):
                return f"the output {output} is the input folder; choose another one"
            if _within(item, output):
                return f"the input folder {item} lies inside the output {output}; choose another one"
    if out_local is None:
        fs, path = filesystem(output)
        if fs.isfile(path):
            return f"{output} exists and is not a folder"
    return None


@dataclass(frozen=True, slots=True)
class _Listed:
    url: str
    rel: str
    info: dict[str, Any]


def _list(item: str, exclude: str | None) -> tuple[list[_Listed], dict[str, str]]:
    """Every object under `item` (or `item` itself), and the identities of the sidecars among them."""
    fs, path = filesystem(item)
    fs.invalidate_cache()
    if fs.isfile(path):
        info = fs.info(path)
        name = PurePosixPath(path).name
        return [_Listed(_full(fs, path), name, info)], _sidecars_near(fs, path)
    root = _norm(_full(fs, path))
    found: list[_Listed] = []
    sidecars: dict[str, str] = {}
    for key, info in sorted(fs.find(path, withdirs=False, detail=True).items()):
        url = _full(fs, key)
        if info.get("type") == "directory" or key.endswith("/"):
            continue
        if exclude is not None and _within(url, exclude):
            continue
        if is_sidecar(Path(PurePosixPath(key).name)):
            sidecars[url] = identity(info)
            continue
        found.append(_Listed(url, url[len(root) + 1 :], info))
    return found, sidecars


def _sidecars_near(fs: Any, path: str) -> dict[str, str]:
    """The sidecars of a single listed object: its own and its folder's, where they exist."""
    parent = PurePosixPath(path).parent
    out: dict[str, str] = {}
    for candidate in (f"{path}{SIDECAR_SUFFIX}", str(parent / FOLDER_SIDECAR)):
        if fs.exists(candidate):
            out[_full(fs, candidate)] = identity(fs.info(candidate))
    return out


def _unsafe(rel: str) -> str | None:
    """Why an object's relative name cannot be mirrored into an output folder, or None."""
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\0" in rel or "\\" in rel:
        return "its name has empty, '.' or '..' parts, a backslash or a NUL; it cannot be mirrored safely"
    return None


def _classify(listed: _Listed, head: bytes) -> tuple[Plan, Sniffed, str]:
    """Process, skip or fail a listed object, from its extension and its first bytes (as `discover` does)."""
    name = Path(PurePosixPath(listed.rel).name)
    return verdict(extension_kind(name), sniff_bytes(head))


def _heads(urls: list[str]) -> dict[str, bytes | Exception]:
    """The first bytes of each object, fetched concurrently where the filesystem can."""
    out: dict[str, bytes | Exception] = {}
    by_fs: dict[str, list[str]] = {}
    for url in urls:
        by_fs.setdefault(urlsplit(url).scheme, []).append(url)
    for group in by_fs.values():
        fs, _ = filesystem(group[0])
        paths = [filesystem(u)[1] for u in group]
        try:
            heads = fs.cat_ranges(paths, [0] * len(paths), [_HEAD] * len(paths), on_error="return")
        except (OSError, ValueError) as exc:
            heads = [exc] * len(paths)
        for url, head in zip(group, heads, strict=True):
            out[url] = head if isinstance(head, bytes | Exception) else bytes(head)
    return out


def _sidecars_of(url: str, sidecars: dict[str, str]) -> tuple[tuple[str, ...], str]:
    parent = url.rsplit("/", 1)[0]
    own, folder = f"{url}{SIDECAR_SUFFIX}", f"{parent}/{FOLDER_SIDECAR}"
    present = tuple(u for u in (own, folder) if u in sidecars)
    return present, ",".join(sidecars[u] for u in present)


def discover_urls(inputs: list[str], output: str, exclude: tuple[Path, ...] = ()) -> list[Job]:
    """Jobs for inputs and an output of which at least one is a URL (as `discover` does for folders;
    local folders are never walked into `exclude`, the state folder).

    Raises:
        RemoteError: a filesystem cannot be reached.
    """
    out_local = local_path(output)
    placeholder = out_local or Path("/nonexistent-blur-output")
    jobs: list[Job] = []
    for item in inputs:
        item_local = local_path(item)
        if item_local is not None:
            jobs += [
                _to_output(job, placeholder, None if out_local else output)
                for job in discover([item_local], placeholder)
            ]
        else:
            jobs += _remote_jobs(item, output, out_local)
    jobs = _refuse_overwrite(jobs, inputs)
    return finish_jobs(jobs, out_local) if out_local is not None else _refuse_collisions(jobs)


def _to_output(job: Job, placeholder: Path, output: str | None) -> Job:
    """A local job whose output goes to the URL `output` (mirrored as under `placeholder`)."""
    if output is None or job.output is None:
        return job if output is None else Job(job.source, None, job.plan, job.kind, job.format, job.reason)
    rel = job.output.relative_to(placeholder).as_posix()
    url = f"{_norm(output)}/{rel}"
    return Job(job.source, Path(url), job.plan, job.kind, job.format, job.reason, remote=Remote(output=url))


def _remote_jobs(item: str, output: str, out_local: Path | None) -> list[Job]:
    exclude = output if out_local is None and _within(output, item) else None
    listed, sidecars = _list(item, exclude)
    heads = _heads([entry.url for entry in listed])
    jobs: list[Job] = []
    for entry in listed:
        present, sidecar_ids = _sidecars_of(entry.url, sidecars)
        remote = Remote(source=entry.url, source_id=f"{identity(entry.info)}|{sidecar_ids}", sidecars=present)
        head = heads.get(entry.url, b"")
        unsafe = _unsafe(entry.rel)
        if isinstance(head, Exception):
            plan, sniffed, reason = Plan.fail, Sniffed(Kind.unsupported, ""), f"cannot read: {head}"
        elif unsafe:
            plan, sniffed, reason = Plan.fail, Sniffed(Kind.unsupported, ""), unsafe
        else:
            plan, sniffed, reason = _classify(entry, head)
        dest: Path | None = None
        if plan is Plan.process:
            if out_local is not None:
                dest = out_local.joinpath(*entry.rel.split("/"))
            else:
                remote = Remote(remote.source, f"{_norm(output)}/{entry.rel}", remote.source_id, remote.sidecars)
                dest = Path(remote.output or "")
        jobs.append(Job(Path(entry.url), dest, plan, sniffed.kind, sniffed.format, reason, remote=remote))
    return jobs


def _refuse_overwrite(jobs: list[Job], inputs: list[str]) -> list[Job]:
    """Fail jobs whose output URL is an input (an output never replaces an original)."""
    sources = {j.label for j in jobs}
    out: list[Job] = []
    for job in jobs:
        target = job.output_label if job.remote is not None and job.remote.output else None
        if target is not None and (target in sources or any(_norm(target) == _norm(i) for i in inputs)):
            reason = f"output {target} is an input file; refusing to overwrite it"
            job = Job(job.source, None, Plan.fail, job.kind, job.format, reason, remote=job.remote)
        out.append(job)
    return out


def _refuse_collisions(jobs: list[Job]) -> list[Job]:
    seen: dict[str, str] = {}
    out: list[Job] = []
    for job in jobs:
        target = job.output_label
        if job.output is None or target is None:
            out.append(job)
            continue
        if target in seen:
            reason = f"output {target} would also be written by {seen[target]}; rename one of them"
            out.append(Job(job.source, None, Plan.fail, job.kind, job.format, reason, remote=job.remote))
            continue
        seen[target] = job.label
        out.append(job)
    return out


def output_identity(url: str) -> tuple[int, str]:
    """Size and version of a written output object (what the resume journal records for it).

    Raises:
        OSError: it does not exist or cannot be reached.
    """
    fs, path = filesystem(url)
    fs.invalidate_cache(path)
    info = fs.info(path)
    return int(info.get("size") or 0), identity(info)
