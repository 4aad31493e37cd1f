"""Faces still visible: a fresh detection on the decoded pixels, as a viewer would see them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from blur.audit.model import Category, Finding
from blur.detect import Detector
from blur.errors import BlurError
from blur.media.animated import read_pictures
from blur.media.image import probe_photo, read_photo
from blur.types import Detections, Frame, iou_matrix

FILL_MAX = 6
"""A pixel is black fill when no channel exceeds this (blur's and deface's solid masks are black;
H.264 leaves 0-2 on them)."""
FILL_SHARE = 0.3
"""Share of black fill in a detection's centre from which it is checked for being a mask's outline."""
CENTRE = 0.6
"""The centre of a box: this share of its width and height, where the eyes, nose and mouth are."""
AROUND = 2.0
"""Around a box: the box grown to this multiple of its width and height."""
AROUND_SHARE = 0.15
"""Share of black fill around a detection from which it is checked for being a mask's outline
(a detection on a chest below a masked head, or on a patch between masks)."""
SAME_FACE_IOU = 0.3
"""Overlap from which a detection after the repaint is taken to be the same face."""
RECHECK = 0.5
"""After the repaint a detection stays a face if one is found in its place at this share of the threshold."""


@dataclass(frozen=True, slots=True)
class FaceCheck:
    """The detector and the score from which a detection counts as a visible face."""

    detector: Detector
    threshold: float
    every: int = 1

    def faces(self, frame: Frame) -> Detections:
        """Detections at or above the threshold, less the outlines of black masks (see `mask_outlines`)."""
        dets = self.detector.detect(frame)
        dets = dets[dets.score >= self.threshold]
        outlines = mask_outlines(frame, dets, self)
        return dets[~outlines] if outlines.any() else dets


def fill_share(frame: Frame, box: npt.NDArray[np.float32], scale: float) -> float:
    """Share of black fill in `box` scaled by `scale` about its centre (clipped to the picture)."""
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * (1 - scale) / 2, (y2 - y1) * (1 - scale) / 2
    xa, ya = max(0, round(x1 + mx)), max(0, round(y1 + my))
    xb, yb = min(w, max(xa + 1, round(x2 - mx))), min(h, max(ya + 1, round(y2 - my)))
    region = frame[ya:yb, xa:xb]
    if region.size == 0:
        return 0.0
    return float((region.max(axis=2) <= FILL_MAX).mean())


def suspect(frame: Frame, box: npt.NDArray[np.float32]) -> bool:
    """Whether a detection might be a mask's outline: black fill in its centre or around it."""
    return fill_share(frame, box, CENTRE) >= FILL_SHARE or fill_share(frame, box, AROUND) >= AROUND_SHARE


def mask_outlines(frame: Frame, dets: Detections, check: FaceCheck) -> npt.NDArray[np.bool_]:
    """Which detections are only the outline of a black mask, not a face.

    A detector can take a filled ellipse over a head for a face, or a chest below it, or a patch
    between masks (blur's outputs of five real clips: 33 such findings at 0.50-0.68). A `suspect`
    detection is looked at again with the black fill near it repainted from its surroundings: if
    no face is found in its place any more (at `RECHECK` of the threshold), it was a mask's outline.
    A face partly showing beside a mask keeps its eyes or mouth after the repaint, and stays.
    """
    outline = np.zeros(len(dets), bool)
    suspects = [i for i in range(len(dets)) if suspect(frame, dets.xyxy[i])]
    if not suspects:
        return outline
    h, w = frame.shape[:2]
    near = np.zeros((h, w), np.uint8)  # the fill is repainted around the suspects only
    for x1, y1, x2, y2 in dets.xyxy[suspects]:
        bw, bh = x2 - x1, y2 - y1
        near[max(0, int(y1 - bh)) : min(h, int(y2 + bh) + 1), max(0, int(x1 - bw)) : min(w, int(x2 + bw) + 1)] = 1
    fill = (frame.max(axis=2) <= FILL_MAX).astype(np.uint8) & near
    fill = cv2.dilate(fill, np.ones((3, 3), np.uint8))  # the codec's ringing at the fill's edge
    repainted = np.asarray(cv2.inpaint(np.ascontiguousarray(frame), fill, 3, cv2.INPAINT_TELEA), np.uint8)
    again = check.detector.detect(repainted)
    again = again[again.score >= check.threshold * RECHECK]
    overlap = iou_matrix(dets.xyxy[suspects], again.xyxy) if len(again) else np.zeros((len(suspects), 0))
    for row, i in enumerate(suspects):
        outline[i] = not (overlap[row] >= SAME_FACE_IOU).any()
    return outline


def box_text(box: tuple[float, float, float, float]) -> str:
    """A box as `x1,y1-x2,y2` in whole pixels."""
    x1, y1, x2, y2 = (round(v) for v in box)
    return f"{x1},{y1}-{x2},{y2}"


def face_findings(dets: Detections, where: str = "") -> list[Finding]:
    """One finding per detection, with its box and score."""
    findings = []
    for (x1, y1, x2, y2), score in zip(dets.xyxy.tolist(), dets.score.tolist(), strict=True):
        box = (float(x1), float(y1), float(x2), float(y2))
        place = f"{where}, box {box_text(box)}" if where else f"box {box_text(box)}"
        findings.append(Finding(Category.face, "face still visible", f"score {score:.2f}", place, box, float(score)))
    return findings


def photo_faces(path: Path, fmt: str, check: FaceCheck) -> tuple[list[Finding], int]:
    """Faces a detector still finds in the upright picture (RGB under any transparency included), in
    every frame of an animation, page of a TIFF and image of a HEIF; and the frames checked."""
    try:
        header = probe_photo(path, fmt)
        if header.frames == 1:
            return face_findings(check.faces(read_photo(path, fmt).rgb)), 1
        pictures = read_pictures(path, header)
    except BlurError as exc:
        return [Finding(Category.error, "pixels could not be decoded", str(exc))], 0
    what = "frame" if pictures.timeline else "page" if fmt == "TIFF" else "image"
    findings: list[Finding] = []
    checked = range(0, len(pictures.frames), max(1, check.every))
    for index in checked:
        findings += face_findings(check.faces(pictures.frames[index].rgb), f"{what} {index + 1}")
    return findings, len(checked)
