"""The ``hoglbp`` visual extractor: descriptors, real videos, failures, worker pickling, the CLI."""

from __future__ import annotations

import csv
import functools
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from extractors import get_extractor
from extractors.base import ItemError
from extractors.faces import face_crops, pool
from extractors.visual_hoglbp import (
    LBP_BINS,
    UNIFORM_LBP,
    HogLbpConfig,
    HogLbpExtractor,
    lbp_codes,
    lbp_histograms,
)
from mmemolr.config import ConfigError, from_dict
from mmemolr.corpus.model import Utterance


def utt(path: Path | None, uid: str = "u0", **kw) -> Utterance:
    return Utterance(id=uid, dialogue_id="d0", index=0, speaker="A", text="", label="neutral", split="train",
                     video_path=None if path is None else str(path), **kw)


@pytest.fixture(scope="module")
def extractor() -> HogLbpExtractor:
    return HogLbpExtractor()


# --- descriptors ----------------------------------------------------------------------------------------

def test_uniform_lbp_table():
    assert UNIFORM_LBP.min() == 0 and UNIFORM_LBP.max() == LBP_BINS - 1
    assert len(set(UNIFORM_LBP[UNIFORM_LBP < 58].tolist())) == 58  # 58 uniform codes, one bin each
    assert (UNIFORM_LBP == 58).sum() == 256 - 58
    # 0b00000000, 0b11111111 and 0b00001111 are uniform; 0b01010101 is not
    assert UNIFORM_LBP[0] != 58 and UNIFORM_LBP[255] != 58 and UNIFORM_LBP[0b00001111] != 58
    assert UNIFORM_LBP[0b01010101] == 58


def test_lbp_code_by_hand():
    patch = np.array([[9, 1, 9],
                      [1, 5, 9],
                      [1, 1, 5]], dtype=np.uint8)
    # neighbours clockwise from top-left: 9 1 9 9 5 1 1 1 -> >= 5: 1 0 1 1 1 0 0 0 -> bits 0, 2, 3, 4
    assert lbp_codes(patch).tolist() == [[0b00011101]]


def test_lbp_histograms_sum_to_one_per_cell():
    grey = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    hist = lbp_histograms(grey, 4)
    assert hist.shape == (16 * LBP_BINS,)
    np.testing.assert_allclose(hist.reshape(16, LBP_BINS).sum(axis=1), 1.0, rtol=1e-6)
    flat = lbp_histograms(np.full((20, 20), 7, np.uint8), 2)  # every neighbour >= centre: code 255
    assert flat.reshape(4, LBP_BINS)[:, UNIFORM_LBP[255]].tolist() == [1.0] * 4


@pytest.mark.parametrize(
    "options, per_crop",
    [
        ({}, 1764 + 944),
        ({"descriptors": ["lbp"]}, 944),
        ({"descriptors": ["hog"], "crop_size": 32}, 3 * 3 * 4 * 9),
        ({"crop_size": 96, "hog_cell": 16, "hog_bins": 12, "lbp_grid": 3}, 5 * 5 * 4 * 12 + 9 * 59),
    ],
)
def test_dimension_follows_the_config(options, per_crop):
    ex = HogLbpExtractor(from_dict(HogLbpConfig, options))
    assert ex.crop_dim() == per_crop and ex.feature_dim() == per_crop
    crop = np.random.default_rng(1).integers(0, 255, (ex.config.crop_size,) * 2 + (3,), dtype=np.uint8)
    assert ex.describe(crop).shape == (per_crop,)
    three = HogLbpExtractor(from_dict(HogLbpConfig, {**options, "pooling": ["mean", "std", "max"]}))
    assert three.feature_dim() == 3 * per_crop


def test_hog_matches_opencv(extractor):
    crop = np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    reference = cv2.HOGDescriptor((64, 64), (16, 16), (8, 8), (8, 8), 9).compute(grey)
    np.testing.assert_array_equal(extractor.describe(crop)[:1764], reference)


@pytest.mark.parametrize(
    "options, words",
    [
        ({"hog_cell": 7}, "must divide crop_size"),
        ({"descriptors": ["sift"]}, "descriptors"),
        ({"descriptors": []}, "descriptors"),
        ({"lbp_grid": 40}, "lbp_grid"),
        ({"crop_size": 8}, "crop_size"),
    ],
)
def test_config_errors(options, words):
    with pytest.raises(ConfigError, match=words):
        from_dict(HogLbpConfig, options)


# --- real media -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["single_face.mp4", "carphone_pristine.mp4", "single_face.jpg", "multi_face.jpg"])
def test_faces_give_finite_vectors(media_dir, extractor, name):
    [vector] = extractor.extract_batch([utt(media_dir / name)], None)
    assert isinstance(vector, np.ndarray) and vector.dtype == np.float32
    assert vector.shape == (extractor.feature_dim(),) and np.isfinite(vector).all() and vector.any()


def test_no_face(media_dir, extractor):
    [result] = extractor.extract_batch([utt(media_dir / "no_face.mp4")], None)
    assert isinstance(result, ItemError) and result.kind == "no_face"


def test_vector_comes_from_the_frames_with_a_face_only(media_dir, extractor):
    item = utt(media_dir / "face_noface.mov")
    [vector] = extractor.extract_batch([item], None)
    crops = face_crops(item, extractor.config, extractor.detector, extractor.config.crop_size)
    assert 0 < crops.frames_with_face < crops.frames_sampled
    expected = pool(np.stack([extractor.describe(c) for c in crops.crops]), ["mean"])
    np.testing.assert_allclose(vector, expected, rtol=1e-6)


def test_largest_and_all_faces_differ_on_a_group_photo(media_dir):
    item = utt(media_dir / "multi_face.jpg")
    largest = HogLbpExtractor(HogLbpConfig(face="largest")).extract_batch([item], None)[0]
    every = HogLbpExtractor(HogLbpConfig(face="all")).extract_batch([item], None)[0]
    assert largest.shape == every.shape and not np.allclose(largest, every)


def test_batch_keeps_order_and_is_repeatable(media_dir, tmp_path, extractor):
    items = [utt(media_dir / "single_face.jpg", "a"), utt(tmp_path / "gone.mp4", "b"),
             utt(media_dir / "no_face.mp4", "c"), utt(None, "d"), utt(media_dir / "multi_face.jpg", "e")]
    first = extractor.extract_batch(items, None)
    kinds = [r.kind if isinstance(r, ItemError) else "ok" for r in first]
    assert kinds == ["ok", "missing", "no_face", "missing", "ok"]
    again = extractor.extract_batch([items[0], items[4]], None)
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[4])


def test_pickles_for_worker_processes(media_dir, extractor):
    item = utt(media_dir / "single_face.jpg")
    clone = pickle.loads(pickle.dumps(extractor))
    np.testing.assert_array_equal(clone.extract_batch([item], None)[0], extractor.extract_batch([item], None)[0])


def test_registry_and_provenance(extractor):
    assert get_extractor("hoglbp") is HogLbpExtractor
    assert HogLbpExtractor.modality == "visual" and HogLbpExtractor.cpu_parallel
    assert extractor.default_output_name() == "visual-hoglbp"
    prov = extractor.provenance()
    assert prov["model_id"] == "hoglbp" and len(prov["cascade_sha256"]) == 64
    assert prov["cascade"] == "haarcascade_frontalface_default.xml" and prov["versions"]["opencv"] == cv2.__version__


# --- through the CLI ------------------------------------------------------------------------------------

def test_extract_cli_end_to_end(media_dir, tmp_path):
    """`mmemolr corpus prepare` + `mmemolr extract --modality visual --workers 2` in a fresh process, as users
    run it (this test process has used OpenCV threads, which a forked worker must not inherit)."""
    from mmemolr.paths import REPO_ROOT
    from mmemolr.store import read_features

    rows = [
        ("d1", 0, "single_face.mp4", "", ""),
        ("d1", 1, "no_face.mp4", "", ""),
        ("d1", 2, "face_noface.mov", "0.5", "2.0"),
        ("d2", 0, "carphone_pristine.mp4", "", ""),
        ("d2", 1, "multi_face.jpg", "", ""),
    ]
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["dialogue_id", "utterance_index", "speaker", "text", "label", "split", "video_path",
                         "start", "end"])
        for i, (dialogue, index, name, start, end) in enumerate(rows):
            writer.writerow([dialogue, index, "AB"[i % 2], f"line {i}", "joy" if i % 2 else "neutral",
                             "train" if dialogue == "d1" else "test", str(media_dir / name), start, end])
    folder = tmp_path / "features" / "vis"
    cli = [sys.executable, "-m", "mmemolr.cli.main"]
    run = functools.partial(subprocess.run, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    prepared = run([*cli, "corpus", "prepare", "--corpus", "manifest", "--root", str(manifest), "--name", "vis",
                    "--out", str(folder)])
    assert prepared.returncode == 0, prepared.stderr
    done = run([*cli, "extract", "--corpus", str(folder), "--modality", "visual", "--workers", "2",
                "--no-progress", "--max-failures", "1", "pooling=mean,std"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no_face" in done.stdout
    assert f"note: 1 utterance(s) have a still image, not a video, as video_path (e.g. {media_dir / 'multi_face.jpg'} " \
           "for d2_u1); each is read as a single frame" in done.stderr
    features = read_features(folder / "visual-hoglbp.h5")
    assert features.attrs["extractor"] == "hoglbp" and int(features.attrs["dim"]) == 2 * 2708
    assert features.ids == ["d1_u0", "d1_u1", "d1_u2", "d2_u0", "d2_u1"]
    assert features.available.tolist() == [True, False, True, True, True]
    assert [(e[0], e[1]) for e in features.errors] == [("d1_u1", "no_face")]
    assert np.isfinite(features.features[features.available]).all()
    # the direct call gives the same vector as the run in worker processes
    direct = HogLbpExtractor(HogLbpConfig(pooling=["mean", "std"])).extract_batch([utt(media_dir / "single_face.mp4")], None)
    np.testing.assert_allclose(features.features[0], direct[0], rtol=1e-6)
