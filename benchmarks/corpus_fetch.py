"""Gather a corpus of small real-world pictures and clips from the test folders of well-known imaging projects.

Usage (from the repository root)::

    python benchmarks/corpus_fetch.py                      # from mirrors under /work/.mirror (bare git)
    python benchmarks/corpus_fetch.py --mirrors DIR        # mirrors laid out as DIR/OWNER+NAME/repo
    python benchmarks/corpus_fetch.py --clone              # clone missing mirrors from GitHub first

Files are copied out of bare git mirrors (`git cat-file`), never from a working tree, into
`benchmarks/corpus/files/OWNER+NAME/PATH` (ignored by git: the corpus is never committed), and
`benchmarks/corpus/manifest.json` records for every file its repository, commit, path, licence,
size and SHA-256. The selection is fixed below: a few hundred files under 200 MB. Run
`benchmarks/corpus.py` on the result.

This is a measuring instrument, not a test: nothing in tests/ runs or imports it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS = REPO_ROOT / "benchmarks" / "corpus"
DEFAULT_MIRRORS = Path("/work/.mirror")
MAX_TOTAL_BYTES = 200_000_000

MEDIA = (
    r"\.(jpe?g|png|apng|gif|webp|tiff?|heic|heif|hif|avifs?|mp4|m4v|mov|mkv|webm|avi|3gp|cr2|cr3|nef|dng|mpo|psd|jxl)$"
)


@dataclass(frozen=True, slots=True)
class Pick:
    """Files under `folder` whose path matches `pattern`: at most `limit`, each at most `max_bytes`,
    spread evenly over the sorted matches; `licence` names the licence and where it is stated."""

    folder: str
    pattern: str
    limit: int
    max_bytes: int
    licence: str


@dataclass(frozen=True, slots=True)
class Source:
    """One repository and what is taken from it."""

    repo: str
    picks: tuple[Pick, ...]


SOURCES: tuple[Source, ...] = (
    Source(
        "AOMediaCodec/av1-avif",
        (
            Pick("testFiles/Apple", r"\.avif$", 12, 2_000_000, "CC-BY-SA-4.0 (testFiles/Apple/license.txt)"),
            Pick("testFiles/Link-U", r"\.avifs?$", 24, 2_000_000, "CC-BY-SA-4.0 (testFiles/Link-U/LICENSE.txt)"),
            Pick("testFiles/Microsoft", r"\.avif$", 24, 2_000_000, "see testFiles/Microsoft/ReadMe.md (Exif)"),
            Pick("testFiles/Netflix", r"\.avifs?$", 12, 2_000_000, "Netflix licence (testFiles/Netflix/license.txt)"),
            Pick("testFiles/Xiph", r"\.avifs?$", 8, 2_000_000, "see testFiles/Xiph/README.md (sources' licences)"),
        ),
    ),
    Source(
        "strukturag/libheif",
        (
            Pick("examples", r"\.(heic|heif|avif)$", 10, 5_000_000, "LGPL-3.0 / MIT (COPYING)"),
            Pick("fuzzing/data/corpus", r"\.(heic|heif|avif)$", 40, 2_000_000, "LGPL-3.0 / MIT (COPYING)"),
        ),
    ),
    Source("exiftool/exiftool", (Pick("t/images", MEDIA, 80, 5_000_000, "GPL-3.0 or Artistic (LICENSE)"),)),
    Source(
        "python-pillow/Pillow",
        (
            Pick("Tests/images/apng", r"\.png$", 30, 2_000_000, "MIT-CMU (LICENSE)"),
            Pick("Tests/images", r"^Tests/images/[^/]+\.gif$", 30, 2_000_000, "MIT-CMU (LICENSE)"),
            Pick("Tests/images", r"^Tests/images/[^/]+\.webp$", 14, 2_000_000, "MIT-CMU (LICENSE)"),
            Pick("Tests/images", r"^Tests/images/[^/]+\.avifs?$", 15, 2_000_000, "MIT-CMU (LICENSE)"),
            Pick("Tests/images", r"^Tests/images/[^/]+\.tiff?$", 40, 2_000_000, "MIT-CMU (LICENSE)"),
            Pick("Tests/images", r"^Tests/images/[^/]+\.(jpe?g|mpo)$", 30, 2_000_000, "MIT-CMU (LICENSE)"),
            Pick("Tests/images", r"^Tests/images/[^/]+\.png$", 30, 2_000_000, "MIT-CMU (LICENSE)"),
        ),
    ),
    Source(
        "image-rs/image",
        (
            Pick("tests/images/gif", r"\.gif$", 10, 2_000_000, "MIT or Apache-2.0 (LICENSE-MIT, LICENSE-APACHE)"),
            Pick("tests/images/webp", r"\.webp$", 10, 2_000_000, "MIT or Apache-2.0 (LICENSE-MIT, LICENSE-APACHE)"),
            Pick("tests/images/tiff", r"\.tiff?$", 10, 2_000_000, "MIT or Apache-2.0 (LICENSE-MIT, LICENSE-APACHE)"),
        ),
    ),
)


def _git(git_dir: Path, *args: str) -> bytes:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True).stdout


def _mirror(mirrors: Path, repo: str, clone: bool) -> Path | None:
    path = mirrors / repo.replace("/", "+") / "repo"
    if path.is_dir():
        return path
    if not clone:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"https://github.com/{repo}.git"
    print(f"cloning {url} (bare) into {path}", file=sys.stderr)
    subprocess.run(["git", "clone", "--bare", "--quiet", url, str(path)], check=True)
    return path


def _tree(git_dir: Path) -> list[tuple[str, int, str]]:
    """(blob id, size, path) of every file at HEAD."""
    rows = []
    for entry in _git(git_dir, "ls-tree", "-r", "-l", "-z", "HEAD").split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        _mode, kind, blob, size = meta.split()
        if kind == b"blob" and size.isdigit():  # a blob absent from a partial mirror has no size
            rows.append((blob.decode(), int(size), path.decode("utf-8", "surrogateescape")))
    return rows


def _chosen(tree: list[tuple[str, int, str]], pick: Pick) -> list[tuple[str, int, str]]:
    pattern = re.compile(pick.pattern, re.IGNORECASE)
    matches = sorted(
        (
            row
            for row in tree
            if row[2].startswith(pick.folder + "/") and pattern.search(row[2]) and row[1] <= pick.max_bytes
        ),
        key=lambda row: row[2],
    )
    if len(matches) <= pick.limit:
        return matches
    step = len(matches) / pick.limit
    return [matches[int(i * step)] for i in range(pick.limit)]


def fetch(mirrors: Path, clone: bool) -> tuple[list[dict[str, object]], list[str]]:
    """Copy every chosen file into the corpus; return the manifest rows and the repositories missing."""
    files = CORPUS / "files"
    if files.exists():
        shutil.rmtree(files)
    manifest: list[dict[str, object]] = []
    missing: list[str] = []
    total = 0
    for source in SOURCES:
        git_dir = _mirror(mirrors, source.repo, clone)
        if git_dir is None:
            missing.append(source.repo)
            continue
        commit = _git(git_dir, "rev-parse", "HEAD").decode().strip()
        tree = _tree(git_dir)
        for pick in source.picks:
            for blob, size, path in _chosen(tree, pick):
                data = _git(git_dir, "cat-file", "blob", blob)
                if data.startswith(b"version https://git-lfs"):
                    continue  # an LFS pointer, not the file
                if total + size > MAX_TOTAL_BYTES:
                    break
                dest = files / source.repo.replace("/", "+") / path
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
                total += size
                manifest.append(
                    {
                        "file": str(dest.relative_to(CORPUS)),
                        "repo": source.repo,
                        "commit": commit,
                        "path": path,
                        "licence": pick.licence,
                        "bytes": size,
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                )
    return manifest, missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirrors", type=Path, default=DEFAULT_MIRRORS, help="folder of bare mirrors OWNER+NAME/repo")
    parser.add_argument("--clone", action="store_true", help="clone missing mirrors from GitHub (needs the internet)")
    args = parser.parse_args()
    manifest, missing = fetch(args.mirrors, args.clone)
    CORPUS.mkdir(parents=True, exist_ok=True)
    (CORPUS / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(int(str(row["bytes"])) for row in manifest)
    print(f"{len(manifest)} files, {total / 1e6:.1f} MB in {CORPUS / 'files'}; manifest: {CORPUS / 'manifest.json'}")
    for repo in missing:
        print(f"missing mirror: {repo} (bring it as {args.mirrors}/{repo.replace('/', '+')}/repo, or use --clone)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
