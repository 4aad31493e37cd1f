"""Core data types shared by every module: frames, masks and detections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

Frame: TypeAlias = npt.NDArray[np.uint8]
"""An H×W×3 uint8 image in RGB order. RGB is the only channel order inside blur."""

Mask: TypeAlias = npt.NDArray[np.bool_]
"""An H×W boolean array: True where pixels must be anonymized."""


@dataclass(frozen=True, slots=True)
class Detections:
    """Faces found in one frame, in that frame's pixel coordinates.

    Attributes:
        xyxy: (N, 4) float32 boxes as x1, y1, x2, y2.
        score: (N,) float32 confidences in [0, 1].
    """

    xyxy: npt.NDArray[np.float32]
    score: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            msg = f"xyxy must have shape (N, 4), got {self.xyxy.shape}"
            raise ValueError(msg)
        if self.score.shape != (self.xyxy.shape[0],):
            msg = f"score must have shape ({self.xyxy.shape[0]},), got {self.score.shape}"
            raise ValueError(msg)

    @classmethod
    def empty(cls) -> Detections:
        """Return detections holding no face."""
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    @classmethod
    def from_arrays(cls, xyxy: npt.ArrayLike, score: npt.ArrayLike) -> Detections:
        """Build detections from anything array-like, casting to float32."""
        boxes = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(score, dtype=np.float32).reshape(-1)
        return cls(boxes, scores)

    @classmethod
    def concat(cls, parts: list[Detections]) -> Detections:
        """Join several detection sets into one."""
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.xyxy for p in parts]).astype(np.float32),
            np.concatenate([p.score for p in parts]).astype(np.float32),
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: npt.NDArray[np.bool_] | npt.NDArray[np.intp] | slice) -> Detections:
        return Detections(self.xyxy[index].reshape(-1, 4), self.score[index].reshape(-1))

    @property
    def width(self) -> npt.NDArray[np.float32]:
        """Box widths."""
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def height(self) -> npt.NDArray[np.float32]:
        """Box heights."""
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    def scaled(self, sx: float, sy: float | None = None) -> Detections:
        """Return boxes multiplied by a scale factor (coordinates, not box size)."""
        sy = sx if sy is None else sy
        factor = np.array([sx, sy, sx, sy], np.float32)
        return Detections(self.xyxy * factor, self.score.copy())

    def shifted(self, dx: float, dy: float) -> Detections:
        """Return boxes translated by (dx, dy)."""
        offset = np.array([dx, dy, dx, dy], np.float32)
        return Detections(self.xyxy + offset, self.score.copy())

    def clipped(self, width: int, height: int) -> Detections:
        """Return boxes clipped to a width×height frame, dropping empty ones."""
        boxes = self.xyxy.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return Detections(boxes[keep], self.score[keep])

    def to_list(self) -> list[dict[str, float | list[float]]]:
        """Return JSON-ready dicts with rounded boxes and scores."""
        return [
            {"box": [round(float(v), 1) for v in box], "score": round(float(s), 4)}
            for box, s in zip(self.xyxy, self.score, strict=True)
        ]


def iou_matrix(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Pairwise intersection over union of two (N, 4) and (M, 4) xyxy box arrays."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    result: npt.NDArray[np.float32] = (inter / np.maximum(union, 1e-6)).astype(np.float32)
    return result


def nms(dets: Detections, iou_threshold: float) -> Detections:
    """Greedy non-maximum suppression, highest score first.

    Memory is linear in the number of boxes: each kept box is compared with the boxes still in play,
    never an N×N matrix (a dense crowd gives tens of thousands of candidates; the matrix and its
    temporaries took several GB).
    """
    if len(dets) <= 1:
        return dets
    order = np.argsort(-dets.score, kind="stable")
    boxes = dets.xyxy[order]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    alive = np.arange(len(order))
    keep: list[int] = []
    while len(alive):
        i = int(alive[0])
        keep.append(i)
        rest = alive[1:]
        if not len(rest):
            break
        b = boxes[rest]
        iw = (np.minimum(boxes[i, 2], b[:, 2]) - np.maximum(boxes[i, 0], b[:, 0])).clip(0)
        ih = (np.minimum(boxes[i, 3], b[:, 3]) - np.maximum(boxes[i, 1], b[:, 1])).clip(0)
        inter = iw * ih
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-6)
        alive = rest[iou <= iou_threshold]
    return dets[order[np.array(keep, dtype=np.intp)]]
