"""Frame sampling, face detection, cropping and pooling shared by the visual extractors (extractors/faces.py)."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from extractors.base import ItemError
from extractors.faces import (
    FaceConfig,
    FaceDetector,
    cascade_path,
    crop_face,
    face_crops,
    pool,
    sample_frames,
    sample_times,
    select_faces,
)
from mmemolr.config import ConfigError, from_dict
from mmemolr.corpus.model import Utterance


def utt(path: str | Path | None, uid: str = "u0", start: float | None = None, end: float | None = None) -> Utterance:
    return Utterance(id=uid, dialogue_id="d0", index=0, speaker="A", text="", label="neutral", split="train",
                     video_path=None if path is None else str(path), start=start, end=end)


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """An MJPG .avi (available in every opencv-python wheel) from BGR frames."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def counter_video(tmp_path_factory) -> Path:
    """5 s at 10 frames/s; frame i is uniform grey 5*i, so a decoded frame tells its own index."""
    path = tmp_path_factory.mktemp("video") / "counter.avi"
    return write_video(path, [np.full((48, 64, 3), 5 * i, np.uint8) for i in range(50)])


def frame_indices(frames) -> list[int]:
    return [round(float(f.image.mean()) / 5) for f in frames]


# --- sampling -------------------------------------------------------------------------------------------

def test_sample_times_midpoints_and_spread():
    assert sample_times(2.4, 2.0, 32) == (0.25, 0.5)
    offset, step = sample_times(100.0, 2.0, 32)  # 200 samples wanted, 32 allowed: spread over the clip
    assert step == pytest.approx(100 / 32) and offset == pytest.approx(50 / 32)
    assert sample_times(None, 4.0, 8) == (0.125, 0.25)


def test_sampling_rate_and_frame_identity(counter_video):
    frames = list(sample_frames(utt(counter_video), fps=2.0, max_frames=32))
    assert frame_indices(frames) == [2, 7, 12, 17, 22, 27, 32, 37, 42, 47]
    assert [round(f.time, 2) for f in frames] == [0.2, 0.7, 1.2, 1.7, 2.2, 2.7, 3.2, 3.7, 4.2, 4.7]


def test_max_frames_spreads_samples_over_the_whole_clip(counter_video):
    frames = list(sample_frames(utt(counter_video), fps=10.0, max_frames=4))
    assert frame_indices(frames) == [6, 19, 31, 44]


def test_fps_above_the_native_rate_takes_every_frame_once(counter_video):
    assert frame_indices(sample_frames(utt(counter_video), fps=100.0, max_frames=100)) == list(range(50))


def test_segment_start_end(counter_video):
    assert frame_indices(sample_frames(utt(counter_video, start=1.0, end=2.0), 2.0, 32)) == [12, 17]
    assert frame_indices(sample_frames(utt(counter_video, start=4.2), 2.0, 32)) == [44, 49]
    # use_segment=False reads the whole file even when start/end are set
    assert len(list(sample_frames(utt(counter_video, start=1.0, end=2.0), 2.0, 32, use_segment=False))) == 10


def test_segment_outside_the_video_is_empty(counter_video):
    with pytest.raises(ItemError) as err:
        list(sample_frames(utt(counter_video, start=14.0, end=16.0), 2.0, 32))
    assert err.value.kind == "empty" and "5.00s long" in err.value.message
    with pytest.raises(ItemError) as err:
        list(sample_frames(utt(counter_video, start=2.0, end=2.0), 2.0, 32))
    assert err.value.kind == "empty" and "not after start" in err.value.message


def test_real_video_sampling(media_dir):
    frames = list(sample_frames(utt(media_dir / "single_face.mp4"), 2.0, 32))  # 2.4 s at 30 fps
    assert len(frames) == 5
    assert [round(f.time, 2) for f in frames] == [0.23, 0.73, 1.23, 1.73, 2.23]
    assert frames[0].image.shape == (360, 640, 3) and frames[0].image.dtype == np.uint8


def test_still_image_is_one_frame(media_dir):
    frames = list(sample_frames(utt(media_dir / "multi_face.jpg", start=3.0, end=4.0), 2.0, 32))
    assert len(frames) == 1 and frames[0].image.shape == (667, 1000, 3)


@pytest.mark.parametrize(
    "name, content, kind",
    [
        ("zero.mp4", b"", "empty"),
        ("garbage.mp4", bytes(range(256)) * 40, "corrupt"),
        ("garbage.jpg", bytes(range(256)) * 40, "corrupt"),
        ("notes.avi", b"not a video\n" * 200, "corrupt"),
    ],
)
def test_bad_files(tmp_path, name, content, kind):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ItemError) as err:
        list(sample_frames(utt(path, uid="dia1_utt2"), 2.0, 32))
    assert err.value.kind == kind
    assert str(path) in err.value.message and "dia1_utt2" in err.value.message


def test_truncated_real_video_is_corrupt(tmp_path, media_dir):
    data = (media_dir / "single_face.mp4").read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])  # the mp4 index (moov) is at the end: cut off
    with pytest.raises(ItemError) as err:
        list(sample_frames(utt(path), 2.0, 32))
    assert err.value.kind == "corrupt"


def test_missing_files(tmp_path):
    for target, words in [(None, "has no video_path"), (tmp_path / "nope.mp4", "does not exist"), (tmp_path, "not a file")]:
        with pytest.raises(ItemError) as err:
            list(sample_frames(utt(target), 2.0, 32))
        assert err.value.kind == "missing" and words in err.value.message


def test_video_without_frames_is_empty(tmp_path):
    path = tmp_path / "none.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    writer.release()
    with pytest.raises(ItemError) as err:
        list(sample_frames(utt(path), 2.0, 32))
    assert err.value.kind == "empty"


def test_audio_only_file_is_empty(tmp_path):
    import av

    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    with pytest.raises(ItemError) as err:
        list(sample_frames(utt(path), 2.0, 32))
    assert err.value.kind == "empty" and "no video stream" in err.value.message


# --- detection and selection ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(FaceConfig())


def test_single_face_photo(media_dir, detector):
    image = cv2.imread(str(media_dir / "single_face.jpg"))
    boxes = detector.detect(image)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert 0 <= x and 0 <= y and x + w <= image.shape[1] and y + h <= image.shape[0]
    assert w > 100  # a close-up: the face fills a good part of the 572 px wide photo


def test_detection_on_downscaled_frame_maps_back_to_full_resolution(media_dir):
    image = cv2.imread(str(media_dir / "single_face.jpg"))
    small = FaceDetector(FaceConfig(detect_size=320)).detect(image)[0]
    full = FaceDetector(FaceConfig(detect_size=4096)).detect(image)[0]
    centre_small = small[:2] + small[2:] / 2
    centre_full = full[:2] + full[2:] / 2
    assert np.abs(centre_small - centre_full).max() < 0.1 * full[2]
    assert abs(int(small[2]) - int(full[2])) < 0.15 * full[2]


def test_multi_face_photo_and_selection(media_dir, detector):
    image = cv2.imread(str(media_dir / "multi_face.jpg"))
    boxes = detector.detect(image)
    assert len(boxes) >= 3  # five people; Haar misses the one in sunglasses
    largest = select_faces(boxes, "largest", image.shape)
    assert len(largest) == 1
    assert largest[0][2] * largest[0][3] == max(int(w * h) for _, _, w, h in boxes)
    centre = select_faces(boxes, "center", image.shape)
    distances = [np.hypot(x + w / 2 - 500, y + h / 2 - 333.5) for x, y, w, h in boxes]
    assert tuple(centre[0]) == tuple(boxes[int(np.argmin(distances))])
    assert len(select_faces(boxes, "all", image.shape)) == len(boxes)


def test_no_face_video(media_dir, detector):
    config = FaceConfig()
    with pytest.raises(ItemError) as err:
        face_crops(utt(media_dir / "no_face.mp4"), config, detector, 64)
    assert err.value.kind == "no_face" and "8 frame(s)" in err.value.message


def test_face_in_part_of_the_clip(media_dir, detector):
    crops = face_crops(utt(media_dir / "face_noface.mov"), FaceConfig(), detector, 64)
    assert crops.frames_sampled == 13
    assert 0 < crops.frames_with_face < crops.frames_sampled
    assert len(crops.crops) == crops.frames_with_face  # largest: one crop per frame with a face
    # the face leaves the frame: crops come from the first part of the clip only
    assert max(crops.frame_of_crop) < crops.frames_sampled // 2 + 1


@pytest.mark.parametrize("name", ["single_face.mp4", "carphone_pristine.mp4"])
def test_face_videos(media_dir, detector, name):
    crops = face_crops(utt(media_dir / name), FaceConfig(), detector, (48, 40))
    assert crops.frames_with_face >= crops.frames_sampled // 2
    assert all(c.shape == (48, 40, 3) and c.dtype == np.uint8 for c in crops.crops)


def test_all_faces_mode(media_dir, detector):
    crops = face_crops(utt(media_dir / "multi_face.jpg"), FaceConfig(face="all"), detector, 32)
    assert crops.frames_sampled == 1 and crops.frames_with_face == 1 and len(crops.crops) >= 3


def test_detector_pickles_and_is_thread_safe(media_dir, detector):
    image = cv2.imread(str(media_dir / "multi_face.jpg"))
    expected = detector.detect(image)
    clone = pickle.loads(pickle.dumps(detector))
    np.testing.assert_array_equal(clone.detect(image), expected)
    with ThreadPoolExecutor(4) as pool_:
        for boxes in pool_.map(detector.detect, [image] * 8):
            np.testing.assert_array_equal(boxes, expected)


def test_cascade_names(tmp_path):
    assert cascade_path("haarcascade_frontalface_alt2.xml").is_file()
    with pytest.raises(FileNotFoundError, match="haarcascade_frontalface_default.xml"):
        cascade_path("no_such_cascade.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(ValueError, match="not a valid OpenCV cascade"):
        FaceDetector(FaceConfig(cascade=str(bad)))


# --- cropping -------------------------------------------------------------------------------------------

def test_crop_without_margin_is_the_box():
    image = np.random.default_rng(0).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    crop = crop_face(image, np.array([30, 20, 40, 40]), margin=0.0, size=40, rgb=False)
    np.testing.assert_array_equal(crop, image[20:60, 30:70])
    rgb = crop_face(image, np.array([30, 20, 40, 40]), margin=0.0, size=40)
    np.testing.assert_array_equal(rgb, image[20:60, 30:70, ::-1])


def test_crop_is_square_with_margin_and_replicates_borders():
    image = np.zeros((100, 100, 3), np.uint8)
    image[:, 0] = 200  # a bright left column: replicated into the padding left of the frame
    crop = crop_face(image, np.array([0, 40, 20, 10]), margin=0.5, size=40, rgb=False)
    assert crop.shape == (40, 40, 3)
    # side = 20 * 2 = 40 px centred on x=10: columns -10..-1 are outside and copy column 0
    assert (crop[:, :10] == 200).all() and (crop[:, 11:] == 0).all()


# --- pooling and config ---------------------------------------------------------------------------------

def test_pool():
    v = np.array([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_allclose(pool(v, ["mean"]), [2, 4])
    np.testing.assert_allclose(pool(v, ["mean", "std", "max"]), [2, 4, 1, 2, 3, 6])
    np.testing.assert_allclose(pool(v[:1], ["std"]), [0, 0])
    assert pool(v, ["max", "mean"]).dtype == np.float32
    with pytest.raises(ValueError):
        pool(np.zeros((0, 2)), ["mean"])


@pytest.mark.parametrize(
    "data, words",
    [
        ({"fps": 0}, "fps must be > 0"),
        ({"max_frames": 0}, "max_frames"),
        ({"face": "biggest"}, "largest"),
        ({"pooling": ["mean", "median"]}, "median"),
        ({"pooling": []}, "at least one"),
        ({"pooling": "mean,mean"}, "twice"),
        ({"min_face": 1.5}, "min_face"),
        ({"frames": 3}, "unknown key"),
    ],
)
def test_config_errors(data, words):
    with pytest.raises(ConfigError, match=words):
        from_dict(FaceConfig, data)


def test_config_from_command_line_strings():
    config = from_dict(FaceConfig, {"pooling": "mean,std,max", "face": "center", "fps": 5})
    assert config.pooling == ["mean", "std", "max"] and config.face == "center" and config.fps == 5.0
