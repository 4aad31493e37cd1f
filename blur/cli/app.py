"""The `blur` command line. Thin: parse options, build settings, call the library, render results."""

from __future__ import annotations

import json
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from blur import __version__
from blur.config import DEFAULT_MASK_SCALE, DetectorConfig, MaskConfig, MaskMode, MaskShape, Sensitivity, Settings

app = typer.Typer(
    name="blur",
    help="Find every face in photos and videos and make it unrecognisable before publication.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold paths and pixels of the people we protect
    add_completion=False,
)


DEFAULT_SEGMENT_SECONDS = 10.0


class Backend(str, Enum):
    """Detector backends offered on the command line."""

    centerface = "centerface"
    mediapipe = "mediapipe"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"blur {__version__}")
        raise typer.Exit


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Find every face in photos and videos and make it unrecognisable before publication."""


PathsArg = Annotated[list[Path], typer.Argument(help="Photos, videos or folders (walked recursively).")]
InputsArg = Annotated[
    list[str],
    typer.Argument(
        help="Photos, videos or folders (walked recursively), or URLs of objects or prefixes "
        "(s3://bucket/shoot, gs://…, file://…; credentials from the storage's own configuration).",
        show_default=False,
    ),
]
BackendOpt = Annotated[Backend, typer.Option("--backend", "-b", help="Face detector.")]
ThresholdOpt = Annotated[
    float | None, typer.Option("--threshold", "-t", min=0.01, max=0.99, help="Detection score threshold.")
]
MultiscaleOpt = Annotated[
    bool, typer.Option("--multiscale/--no-multiscale", help="Extra upscaled passes that find small faces.")
]
SensitivityOpt = Annotated[
    Sensitivity,
    typer.Option(
        "--sensitivity",
        help="Photo detection preset: high misses fewer faces but masks more of the picture (--threshold overrides).",
    ),
]
ProviderOpt = Annotated[
    list[str] | None,
    typer.Option("--ep", help="ONNX Runtime execution provider (repeatable), e.g. CUDAExecutionProvider."),
]


StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state",
        help="Folder for blur's working files (resume journal, what `blur review` needs); default: the user "
        "state directory. Never inside the output folder.",
    ),
]


def _detector_config(
    backend: Backend,
    threshold: float | None,
    multiscale: bool,
    ep: list[str] | None,
    sensitivity: Sensitivity = Sensitivity.normal,
) -> DetectorConfig:
    return DetectorConfig(
        backend=backend.value,
        threshold=threshold,
        multiscale=multiscale,
        providers=tuple(ep or ()),
        sensitivity=sensitivity,
    )


@app.command()
def anonymize(
    paths: InputsArg,
    output: Annotated[str, typer.Option("--output", "-o", help="Output folder or URL; it mirrors each input folder.")],
    report: Annotated[Path | None, typer.Option("--report", help="Write a JSON report here.")] = None,
    mode: Annotated[
        MaskMode, typer.Option("--mode", "-m", help="Look of masked faces; all fill first.")
    ] = MaskMode.fill,
    shape: Annotated[MaskShape, typer.Option("--shape", help="Mask outline.")] = MaskShape.ellipse,
    mask_scale: Annotated[
        float, typer.Option("--mask-scale", min=1.0, max=4.0, help="Mask size relative to the detector's box.")
    ] = DEFAULT_MASK_SCALE,
    backend: BackendOpt = Backend.centerface,
    threshold: ThresholdOpt = None,
    multiscale: MultiscaleOpt = True,
    sensitivity: SensitivityOpt = Sensitivity.normal,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Re-detect on the anonymized picture and mask what is found.")
    ] = True,
    quality: Annotated[int, typer.Option("--quality", min=50, max=100, help="JPEG/WebP/HEIF quality.")] = 92,
    crf: Annotated[int, typer.Option("--crf", min=0, max=51, help="Video quality (lower is better).")] = 18,
    audio: Annotated[bool, typer.Option("--audio/--no-audio", help="Keep audio (voices can identify people).")] = True,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=0, help="Worker processes for photos (0: one per core).")
    ] = 0,
    ep: ProviderOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", help="Write a review page (anonymized outputs with every mask outlined) to this .html file."
        ),
    ] = None,
    html_with_originals: Annotated[
        bool,
        typer.Option(
            "--html-with-originals",
            help="Also show the ORIGINAL photos in the review page. It then contains unmasked faces: local use only.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Redo every file, even outputs an interrupted earlier run completed.")
    ] = False,
    state: StateOpt = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="Run on a Dask cluster: its scheduler (tcp://HOST:8786, on a private network) or 'local' "
            'for a cluster of worker processes on this machine (pip install "blur[cluster]").',
        ),
    ] = None,
    split_after: Annotated[
        float | None,
        typer.Option(
            "--split-after",
            min=0.0,
            show_default=False,
            help="Split videos at least this many seconds long into segments run side by side (0: never). "
            "Default: videos of 2 minutes and more, where at least 12 workers can share them.",
        ),
    ] = None,
    segment_seconds: Annotated[
        float, typer.Option("--segment-seconds", min=1.0, help="Length of the segments of a split video.")
    ] = DEFAULT_SEGMENT_SECONDS,
) -> None:
    """Anonymize every face in PATHS and write clean copies under --output.

    Correction sidecars (PHOTO.blur.json, or .blur.json per folder) are applied automatically. A run
    that was interrupted resumes: verified finished outputs are kept, the rest is redone.
    """
    from blur.cli.anonymize import RunOptions, run_anonymize  # noqa: PLC0415 - heavy imports only when a command runs
    from blur.video.segments import SegmentOptions  # noqa: PLC0415

    settings = Settings(
        detector=_detector_config(backend, threshold, multiscale, ep, sensitivity),
        mask=MaskConfig(mode=mode, shape=shape, scale=mask_scale),
        verify=verify,
        jpeg_quality=quality,
        video_crf=crf,
        keep_audio=audio,
    )
    if html_with_originals and html is None:
        raise typer.BadParameter("--html-with-originals needs --html FILE", param_hint="--html-with-originals")
    if split_after is None:
        segments = SegmentOptions.auto(segment_seconds)
    else:
        segments = SegmentOptions(split_after, segment_seconds)
    run = RunOptions(jobs=jobs, cluster=cluster, segments=segments, force=force, state_dir=state)
    code = run_anonymize(
        paths,
        output,
        settings,
        report=report,
        quiet=quiet,
        console=Console(stderr=True, soft_wrap=True),
        html=html,
        html_with_originals=html_with_originals,
        run=run,
    )
    raise typer.Exit(code)


@app.command()
def detect(
    paths: PathsArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print detections as JSON.")] = False,
    backend: BackendOpt = Backend.centerface,
    threshold: ThresholdOpt = None,
    multiscale: MultiscaleOpt = True,
    sensitivity: SensitivityOpt = Sensitivity.normal,
    ep: ProviderOpt = None,
    write_sidecar: Annotated[
        bool,
        typer.Option(
            "--write-sidecar",
            help="Also write PHOTO.blur.json beside each file: the faces found, plus empty 'add' and 'keep' "
            "lists to edit (never overwrites an existing sidecar).",
        ),
    ] = False,
) -> None:
    """Print the faces found in photos (boxes in the upright picture's pixels), writing no images."""
    from blur.cli.detect import run_detect  # noqa: PLC0415

    cfg = _detector_config(backend, threshold, multiscale, ep, sensitivity)
    code, payload = run_detect(paths, cfg, write_sidecar=write_sidecar)
    if as_json:
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        _print_detections(payload)
    raise typer.Exit(code)


def _print_detections(payload: dict[str, Any]) -> None:
    from blur.textsafe import printable  # noqa: PLC0415

    for item in payload["files"]:
        source = printable(item["source"])
        if "sidecar" in item:
            typer.echo(f"{source}: sidecar: {printable(item['sidecar'])}", err=True)
        if item["status"] != "ok":
            typer.echo(f"{source}: {item['status']}: {printable(item['reason'])}", err=True)
            continue
        typer.echo(f"{source}: {len(item['faces'])} face(s)")
        for face in item["faces"]:
            typer.echo(f"  box {face['box']} score {face['score']}")


@app.command()
def audit(
    paths: PathsArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    faces: Annotated[
        bool, typer.Option("--faces/--no-faces", help="Re-detect faces on the pixels (--no-faces: metadata only).")
    ] = True,
    every: Annotated[int, typer.Option("--every", min=1, help="Check every Nth video frame (1: every frame).")] = 1,
    face_threshold: Annotated[
        float,
        typer.Option("--face-threshold", min=0.05, max=0.99, help="Score from which a detection counts as a face."),
    ] = 0.5,
    backend: BackendOpt = Backend.centerface,
    multiscale: MultiscaleOpt = True,
    sensitivity: SensitivityOpt = Sensitivity.normal,
    ep: ProviderOpt = None,
) -> None:
    """Check files about to be published: metadata, hidden images, extra streams, faces still visible.

    Exit status: 0 when every photo and video is clean, 1 when anything was found or could not be
    checked, 2 for usage errors.
    """
    from blur.audit import AuditOptions  # noqa: PLC0415
    from blur.cli.audit import run_audit  # noqa: PLC0415

    options = AuditOptions(faces=faces, face_threshold=face_threshold, every=every, multiscale=multiscale)
    cfg = _detector_config(backend, None, multiscale, ep, sensitivity)
    code = run_audit(
        paths, options, cfg, as_json=as_json, write=typer.echo, console=Console(stderr=True, soft_wrap=True)
    )
    raise typer.Exit(code)


@app.command()
def sample(
    folder: Annotated[Path, typer.Argument(help="Where to create the sample folder.")] = Path("blur-sample"),
) -> None:
    """Create a sample folder of photos built from public-domain pictures shipped with scikit-image."""
    from blur.sample import make_sample  # noqa: PLC0415

    start = time.perf_counter()
    files = make_sample(folder)
    typer.echo(f"wrote {len(files)} sample files under {folder} in {time.perf_counter() - start:.1f}s")


@app.command()
def review(
    output: Annotated[Path, typer.Argument(help="The output folder of a `blur anonymize` run.")],
    report: Annotated[
        Path | None, typer.Option("--report", help="The run's JSON report (read, and updated after each apply).")
    ] = None,
    state: StateOpt = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also rewrite this static review page after each apply.")
    ] = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: a free one).")] = 0,
    browser: Annotated[bool, typer.Option("--browser/--no-browser", help="Open the page in the browser.")] = True,
) -> None:
    """Review a batch in the browser: zoom into every mask, keep or add regions, re-render at once.

    Serves a local page on 127.0.0.1 only and prints its address (with its access token); Ctrl-C
    stops it. Corrections are written into the sidecars that `blur anonymize` reads.
    """
    from blur.cli.review import run_review  # noqa: PLC0415

    code = run_review(
        output,
        report=report,
        state_dir=state,
        html=html,
        port=port,
        browser=browser,
        console=Console(stderr=True, soft_wrap=True),
        write=typer.echo,
    )
    raise typer.Exit(code)
