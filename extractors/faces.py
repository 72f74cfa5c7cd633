"""Shared visual front end: sample frames, detect faces, crop them, pool per-crop vectors.

Every visual extractor goes through the same steps, configured by :class:`FaceConfig`:

1. :func:`sample_frames` reads ``Utterance.video_path`` with OpenCV at ``fps`` frames per second (at most
   ``max_frames``, spread evenly over the clip when it is longer), only between ``Utterance.start`` and
   ``end`` when they are set (IEMOCAP's dialogue-level videos); a still image (jpg/png/...) is one frame.
2. :class:`FaceDetector` runs OpenCV's Haar cascade on a grey, histogram-equalised copy of the frame
   downscaled to ``detect_size`` pixels on its long side (detection cost grows with the pixel count, faces in
   ERC video are large), with ``minSize`` a fraction of the frame; boxes are scaled back to full resolution.
3. :func:`select_faces` keeps the largest face, the one nearest the centre, or all of them; :func:`crop_face`
   cuts a square around each with a margin (edge pixels replicated past the border) and resizes it.
4. The extractor turns each crop into a vector; :func:`pool` reduces them to one vector per utterance.

Failures are per utterance :class:`ItemError` kinds: ``missing`` (no path, no file, no read permission),
``corrupt`` (OpenCV cannot decode it), ``empty`` (no frame in the file or in the start/end window) and
``no_face`` (frames, but no face in any of them).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from extractors.base import ExtractorConfig, ItemError
from mmemolr.config import option
from mmemolr.corpus.model import Utterance

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
POOLING_MODES = ("mean", "std", "max")
FACE_MODES = ("largest", "center", "all")


@dataclass
class FaceConfig(ExtractorConfig):
    """Frame sampling, face detection and pooling options shared by the visual extractors."""

    fps: float = option(2.0, doc="frames sampled per second, in the middle of each 1/fps interval (a clip's first "
                        "frame is often a cut)")
    max_frames: int = option(32, doc="cap per utterance; a longer clip gets its samples spread evenly over its whole "
                             "length")
    use_segment: bool = option(True, doc="read only `start`..`end` when the utterance has them")
    face: Literal["largest", "center", "all"] = option(
        "largest", doc="`largest` face of each frame, the one nearest the frame `center`, or `all` (every face becomes "
        "a crop)")
    margin: float = option(0.2, doc="added around the detected box on each side (fraction of its size); the crop is "
                           "square, edge pixels repeat past the border")
    detect_size: int = option(320, doc="the detector runs on a grey, equalised copy with this long side (about 2.7x "
                              "faster than full frames on the test videos); raise it for small faces (IEMOCAP: 480)")
    min_face: float = option(0.1, doc="smallest face side as a fraction of the frame's short side")
    min_neighbors: int = option(4, doc="Haar cascade: more neighbours = fewer false faces, more missed ones")
    scale_factor: float = option(1.1, doc="Haar cascade image pyramid step")
    cascade: str = option("haarcascade_frontalface_default.xml", doc="a cascade shipped with opencv-python (in "
                          "cv2.data.haarcascades), or a path to one")
    pooling: list[str] = option(doc="statistics over the crops, concatenated: any of `mean`, `std`, `max` "
                                "(`pooling=mean,std,max` triples the size)", factory=lambda: ["mean"])

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.face not in FACE_MODES:
            raise ValueError(f"face must be one of {', '.join(FACE_MODES)}, got {self.face!r}")
        if not 0 <= self.margin <= 2:
            raise ValueError(f"margin must be between 0 and 2 (a fraction of the face box), got {self.margin}")
        if self.detect_size < 32:
            raise ValueError(f"detect_size must be >= 32 pixels, got {self.detect_size}")
        if not 0 <= self.min_face < 1:
            raise ValueError(f"min_face must be a fraction in [0, 1), got {self.min_face}")
        if self.min_neighbors < 0:
            raise ValueError(f"min_neighbors must be >= 0, got {self.min_neighbors}")
        if not self.scale_factor > 1:
            raise ValueError(f"scale_factor must be > 1, got {self.scale_factor}")
        check_pooling(self.pooling)


def check_pooling(modes: list[str]) -> None:
    if not modes:
        raise ValueError(f"pooling needs at least one of {', '.join(POOLING_MODES)}")
    unknown = [m for m in modes if m not in POOLING_MODES]
    if unknown:
        raise ValueError(f"unknown pooling {unknown[0]!r}; use a list of {', '.join(POOLING_MODES)}")
    if len(set(modes)) != len(modes):
        raise ValueError(f"pooling lists a mode twice: {modes}")


def pool(vectors: np.ndarray, modes: list[str]) -> np.ndarray:
    """(n, d) per-crop vectors -> (len(modes) * d,) float32, the statistics concatenated in ``modes`` order."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"pool needs a non-empty (n, d) array, got shape {vectors.shape}")
    stats = {"mean": vectors.mean(axis=0), "std": vectors.std(axis=0), "max": vectors.max(axis=0)}
    return np.concatenate([stats[m] for m in modes]).astype(np.float32)


@dataclass
class Frame:
    time: float  # seconds from the start of the file
    image: np.ndarray  # BGR uint8 (H, W, 3), as OpenCV decodes it


def _check_file(path: str | None, uid: str) -> Path:
    if not path:
        raise ItemError("missing", f"utterance {uid} has no video_path")
    p = Path(path)
    if not p.exists():
        raise ItemError("missing", f"{p} does not exist (video of utterance {uid})")
    if not p.is_file():
        raise ItemError("missing", f"{p} is not a file (video of utterance {uid})")
    if not os.access(p, os.R_OK):
        raise ItemError("missing", f"{p} cannot be read: permission denied (video of utterance {uid})")
    if p.stat().st_size == 0:
        raise ItemError("empty", f"{p} is an empty file (video of utterance {uid})")
    return p


def _read_image(p: Path, uid: str) -> Frame:
    # imdecode from bytes also works for non-ASCII paths, which cv2.imread does not on every platform
    image = cv2.imdecode(np.fromfile(str(p), dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ItemError("corrupt", f"{p} cannot be decoded as an image (utterance {uid})")
    return Frame(0.0, image)


def _unopenable(p: Path, uid: str) -> ItemError:
    """Why OpenCV could not open a file: no video stream at all (``empty``) or damaged (``corrupt``)."""
    try:
        import av

        with av.open(str(p)) as container:
            if not container.streams.video:
                return ItemError("empty", f"{p} has no video stream (audio only?) (utterance {uid})")
    except Exception:  # PyAV cannot read it either: damaged or not a media file
        pass
    return ItemError("corrupt", f"OpenCV cannot open {p} as a video (damaged or unsupported; utterance {uid})")


def sample_times(duration: float | None, fps: float, max_frames: int) -> tuple[float, float]:
    """(offset of the first sample, step between samples) in seconds for a clip of ``duration``.

    Samples sit in the middle of ``1/fps`` intervals (a clip's first frame is often a cut or fade); when
    ``duration * fps`` exceeds ``max_frames`` the step grows so the samples still cover the whole clip.
    """
    step = 1.0 / fps
    if duration is not None and duration > 0 and duration * fps > max_frames:
        step = duration / max_frames
    return step / 2, step


def sample_frames(utt: Utterance, fps: float, max_frames: int, use_segment: bool = True) -> Iterator[Frame]:
    """Frames of the utterance's video (or its one still image), sampled as :func:`sample_times` says.

    Raises :class:`ItemError` (``missing``, ``corrupt``, ``empty``) when there is nothing to read.
    """
    p = _check_file(utt.video_path, utt.id)
    if p.suffix.lower() in IMAGE_SUFFIXES:
        yield _read_image(p, utt.id)
        return
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise _unopenable(p, utt.id)
        native_fps = cap.get(cv2.CAP_PROP_FPS)
        native_fps = native_fps if math.isfinite(native_fps) and native_fps > 0 else None
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        length = count / native_fps if native_fps and count > 0 else None
        start = float(utt.start) if use_segment and utt.start is not None else 0.0
        end = float(utt.end) if use_segment and utt.end is not None else None
        if end is not None and end <= start:
            raise ItemError("empty", f"utterance {utt.id}: end {end:.3f}s is not after start {start:.3f}s in {p}")
        if start > 0:
            cap.set(cv2.CAP_PROP_POS_MSEC, start * 1000.0)
        stop = (min(end, length) if length else end) if end is not None else length
        duration = stop - start if stop is not None else None
        offset, step = sample_times(duration, fps, max_frames)
        next_time = start + offset
        frame_gap = 1.0 / native_fps if native_fps else 0.0
        decoded = taken = 0
        previous = -1.0
        while taken < max_frames and cap.grab():
            decoded += 1
            t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if not math.isfinite(t) or t <= previous:  # some containers report no timestamps
                t = previous + frame_gap if previous >= 0 else start
            previous = t
            if end is not None and t >= end:
                break
            if t < start or t + frame_gap / 2 < next_time:
                continue
            ok, image = cap.retrieve()
            if not ok or image is None:
                raise ItemError("corrupt", f"{p}: frame at {t:.3f}s cannot be decoded (utterance {utt.id})")
            taken += 1
            yield Frame(t, image)
            while next_time <= t + frame_gap / 2:
                next_time += step
        if taken == 0:
            if decoded == 0 and start == 0 and count > 0:
                raise ItemError("corrupt", f"{p}: the file claims {int(count)} frames but none decodes (utterance {utt.id})")
            where = f" between {start:.3f}s and {end:.3f}s" if end is not None else (f" after {start:.3f}s" if start else "")
            size = f" (the video is {length:.2f}s long)" if length else ""
            raise ItemError("empty", f"{p}: no video frames{where}{size} (utterance {utt.id})")
    finally:
        cap.release()


def cascade_path(name: str) -> Path:
    """A cascade file name shipped with opencv-python (cv2.data.haarcascades), or a path to one."""
    p = Path(name)
    if p.is_file():
        return p
    bundled = Path(cv2.data.haarcascades) / name
    if bundled.is_file():
        return bundled
    raise FileNotFoundError(
        f"face cascade {name!r} is neither a file nor one of the cascades in {cv2.data.haarcascades} "
        "(e.g. haarcascade_frontalface_default.xml, haarcascade_frontalface_alt2.xml)"
    )


class FaceDetector:
    """Haar cascade face detection on a downscaled, equalised grey copy of each frame."""

    def __init__(self, config: FaceConfig) -> None:
        self.config = config
        self.path = cascade_path(config.cascade)
        self._local = threading.local()
        self.load_cascade()  # now: a bad cascade file is a config error, found before any work starts

    @property
    def cascade(self) -> cv2.CascadeClassifier:
        return self.load_cascade()

    def load_cascade(self) -> cv2.CascadeClassifier:
        # One classifier per thread (detectMultiScale is not thread-safe on a shared one), built on first
        # use because OpenCV objects cannot be pickled into worker processes.
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            try:
                cascade = cv2.CascadeClassifier(str(self.path))
            except (cv2.error, SystemError):  # OpenCV raises on unparsable XML
                cascade = None
            if cascade is None or cascade.empty():
                raise ValueError(f"{self.path} is not a valid OpenCV cascade file")
            self._local.cascade = cascade
        return cascade

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def detect(self, image: np.ndarray) -> np.ndarray:
        """Face boxes (n, 4) as int x, y, w, h in the coordinates of ``image`` (BGR or grey)."""
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        h, w = grey.shape
        scale = min(1.0, self.config.detect_size / max(h, w))
        if scale < 1.0:
            grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(grey)
        side = max(1, round(self.config.min_face * min(grey.shape)))
        boxes = self.cascade.detectMultiScale(
            grey, scaleFactor=self.config.scale_factor, minNeighbors=self.config.min_neighbors, minSize=(side, side)
        )
        if len(boxes) == 0:
            return np.zeros((0, 4), dtype=np.int64)
        boxes = np.round(np.asarray(boxes, dtype=np.float64) / scale).astype(np.int64)
        # OpenCV's parallel detection returns boxes in varying order; sort (by x, then y) for repeatable output
        return boxes[np.lexsort((boxes[:, 1], boxes[:, 0]))]


def select_faces(boxes: np.ndarray, mode: str, frame_shape: tuple[int, ...]) -> np.ndarray:
    """The boxes to use: ``largest`` (by area), ``center`` (nearest the frame centre) or ``all``."""
    if len(boxes) <= 1 or mode == "all":
        return boxes
    if mode == "largest":
        return boxes[[int(np.argmax(boxes[:, 2] * boxes[:, 3]))]]
    if mode == "center":
        h, w = frame_shape[:2]
        centres = boxes[:, :2] + boxes[:, 2:] / 2
        return boxes[[int(np.argmin(((centres - (w / 2, h / 2)) ** 2).sum(axis=1)))]]
    raise ValueError(f"face must be one of {', '.join(FACE_MODES)}, got {mode!r}")


def crop_face(image: np.ndarray, box: np.ndarray, margin: float, size: int | tuple[int, int],
              rgb: bool = True) -> np.ndarray:
    """Square crop centred on ``box`` (x, y, w, h) enlarged by ``margin`` per side, resized to ``size``.

    Parts of the square outside the frame repeat the edge pixels, so the face stays centred and
    undistorted near borders. Returns uint8 (H, W, 3) RGB (or BGR with ``rgb=False``).
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    x, y, w, h = (int(v) for v in box)
    side = max(1, round(max(w, h) * (1 + 2 * margin)))
    x0 = round(x + w / 2 - side / 2)
    y0 = round(y + h / 2 - side / 2)
    ih, iw = image.shape[:2]
    pad = (max(0, -y0), max(0, y0 + side - ih), max(0, -x0), max(0, x0 + side - iw))
    if any(pad):
        image = cv2.copyMakeBorder(image, *pad, borderType=cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad[2], y0 + pad[0]
    crop = image[y0:y0 + side, x0:x0 + side]
    interpolation = cv2.INTER_AREA if side > max(out_h, out_w) else cv2.INTER_CUBIC
    crop = cv2.resize(crop, (out_w, out_h), interpolation=interpolation)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB) if rgb else crop


@dataclass
class FaceCrops:
    """The face crops of one utterance and how many sampled frames had a face."""

    crops: list[np.ndarray]  # RGB uint8 (H, W, 3)
    frame_of_crop: list[int]  # index (among the sampled frames) of the frame each crop comes from
    frames_sampled: int
    frames_with_face: int


def face_crops(utt: Utterance, config: FaceConfig, detector: FaceDetector,
               size: int | tuple[int, int]) -> FaceCrops:
    """Sample, detect, select and crop; raises :class:`ItemError` ``no_face`` when no frame has a face."""
    crops: list[np.ndarray] = []
    frame_of_crop: list[int] = []
    sampled = with_face = 0
    for frame in sample_frames(utt, config.fps, config.max_frames, config.use_segment):
        boxes = select_faces(detector.detect(frame.image), config.face, frame.image.shape)
        if len(boxes):
            with_face += 1
        for box in boxes:
            crops.append(crop_face(frame.image, box, config.margin, size))
            frame_of_crop.append(sampled)
        sampled += 1
    log.debug("utterance %s: %d of %d sampled frames have a face", utt.id, with_face, sampled)
    if not crops:
        raise ItemError(
            "no_face",
            f"no face found in any of the {sampled} frame(s) sampled from {utt.video_path} (utterance {utt.id}); "
            "lower min_face / min_neighbors or raise detect_size if faces are small",
        )
    return FaceCrops(crops, frame_of_crop, sampled, with_face)
