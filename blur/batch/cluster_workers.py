"""The worker side of `--cluster`: the plugin that builds each worker's engine once, after checking
that the worker runs the client's blur and model, and the wrapper every task runs in.

A worker whose blur version or model file (SHA-256) differs from the client's refuses: the plugin's
setup raises when the client registers it (the batch stops before any file is read), and a worker
that joined later with the plugin failed refuses each task it is given (`on_worker`).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from distributed import WorkerPlugin, get_worker

from blur import __version__
from blur.batch.staging import STAGED
from blur.config import DetectorConfig, Settings
from blur.engine import Engine, build_engine
from blur.errors import BlurError

if TYPE_CHECKING:
    from collections.abc import Callable

    from distributed import Worker

T = TypeVar("T")

PLUGIN_NAME = "blur"


class ClusterError(BlurError):
    """The cluster cannot be reached, or a worker runs another blur or model than the client."""


def _model_files(cfg: DetectorConfig) -> list[Path]:
    if cfg.backend == "centerface":
        from blur.detect.centerface import packaged_model_path  # noqa: PLC0415 - the backend's own module

        return [cfg.model_path or packaged_model_path()]
    if cfg.backend == "mediapipe":
        from blur.detect.mediapipe import EXPECTED_SHA256, weights_path  # noqa: PLC0415

        return [weights_path(w) for w in sorted(EXPECTED_SHA256)]
    return []


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What must be the same on the client and every worker: blur's version and the model's bytes."""

    blur: str
    backend: str
    model_sha256: str

    def describe(self) -> str:
        """A short human-readable form."""
        return f"blur {self.blur}, {self.backend} model {self.model_sha256[:12]}"


def fingerprint(settings: Settings) -> Fingerprint:
    """This process's fingerprint for `settings`' detector.

    Raises:
        BlurError: the model is not installed.
    """
    digest = hashlib.sha256()
    for path in _model_files(settings.detector):
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return Fingerprint(__version__, settings.detector.backend, digest.hexdigest())


class BlurPlugin(WorkerPlugin):
    """Builds the worker's engine once, after checking that it runs the client's blur and model."""

    name = PLUGIN_NAME

    def __init__(self, settings: Settings, expected: Fingerprint, threads: int) -> None:
        self.settings = settings
        self.expected = expected
        self.threads = threads
        self.engine: Engine | None = None
        self.error = ""
        self.lock: threading.Lock | None = None  # made on the worker (a lock cannot be pickled)

    def setup(self, worker: Worker) -> None:
        """Check the fingerprint and load the model; raise (the worker refuses work) on any difference."""
        try:
            actual = fingerprint(self.settings)
        except (BlurError, OSError) as exc:
            self.error = f"worker {worker.address}: cannot read the model: {exc}"
            raise ClusterError(self.error) from exc
        if actual != self.expected:
            self.error = (
                f"worker {worker.address} runs {actual.describe()}, this client {self.expected.describe()}; "
                "install the same blur and model on every worker"
            )
            raise ClusterError(self.error)
        detector = replace(self.settings.detector, threads=self.threads or self.settings.detector.threads)
        self.lock = threading.Lock()
        self.engine = build_engine(replace(self.settings, detector=detector))

    def teardown(self, worker: Worker) -> None:
        """Delete any input kept for a split video."""
        STAGED.clear()


def on_worker(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(engine, *args)` with this worker's engine; refuse when the plugin did not set one up."""
    worker = get_worker()
    plugin = worker.plugins.get(PLUGIN_NAME)
    engine = getattr(plugin, "engine", None)
    if not isinstance(plugin, BlurPlugin) or engine is None or plugin.lock is None:
        reason = getattr(plugin, "error", "") or f"worker {worker.address} has no blur engine (plugin not set up)"
        raise ClusterError(reason)
    # One engine per worker process: tasks on a worker with several threads take turns with it.
    with plugin.lock:
        return fn(engine, *args)
