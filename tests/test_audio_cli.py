"""End to end: a manifest corpus cut from the real .stm dialogue, plus broken media, through the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from audio_helpers import need_opensmile, stm_rows, write_silent_wav, write_truncated_wav

from extractors.audio_librosa import LibrosaExtractor
from mmemolr.cli.main import main
from mmemolr.store import read_features

BROKEN = {"bad_u0": "silent", "bad_u1": "corrupt", "bad_u2": "no_audio_track"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, media_dir) -> Path:
    """features/ folder holding the prepared corpus ``calls``: 13 stm utterances + 3 broken items."""
    root = tmp_path_factory.mktemp("audio_cli")
    media = root / "media"
    media.mkdir()
    silent = write_silent_wav(media / "silent.wav")
    cut = write_truncated_wav(media / "cut.wav", media_dir / "dialogue-sample.wav")
    rows = [
        {"dialogue_id": "call", "utterance_index": i, "speaker": speaker, "text": text,
         "label": "joy" if "Chicago" in text else "neutral", "split": "train",
         "audio_path": str(media_dir / "dialogue-sample.wav"), "video_path": "", "start": start, "end": end}
        for i, (speaker, start, end, text) in enumerate(stm_rows(media_dir))
    ]
    for i, path in enumerate([silent, cut, media_dir / "carphone_pristine.mp4"]):
        rows.append({"dialogue_id": "bad", "utterance_index": i, "speaker": "A", "text": "...", "label": "neutral",
                     "split": "dev", "audio_path": str(path), "video_path": "", "start": "", "end": ""})
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    features = root / "features"
    assert main(["corpus", "prepare", "--corpus", "manifest", "--root", str(manifest), "--name", "calls",
                 "--out", str(features / "calls")]) == 0
    return features


def _extract(features: Path, *args: str) -> int:
    return main(["extract", "--corpus", "calls", "--features-dir", str(features), "--no-progress", *args])


@pytest.fixture(scope="module")
def librosa_file(prepared) -> Path:
    """The default audio extractor run with two worker processes."""
    assert _extract(prepared, "--modality", "audio", "--workers", "2", "--max-failures", "3") == 0
    return prepared / "calls" / "audio-librosa.h5"


def test_librosa_with_two_workers_records_failures(librosa_file):
    f = read_features(librosa_file)
    assert f.attrs["extractor"] == "librosa" and f.dim == 370
    assert json.loads(f.attrs["feature_names"]) == LibrosaExtractor().feature_names()
    assert len(f.ids) == 16 and f.done.all()
    broken = np.array([uid in BROKEN for uid in f.ids])
    np.testing.assert_array_equal(f.available, ~broken)
    assert {uid: kind for uid, kind, _ in f.errors} == BROKEN
    assert np.isfinite(f.features[f.available]).all()
    assert not f.features[~f.available].any()  # failed rows hold no invented vector
    assert len(np.unique(f.features[f.available].round(4), axis=0)) == 13


def test_rerun_has_nothing_left_to_do(prepared, librosa_file, capsys):
    assert _extract(prepared, "--modality", "audio", "--workers", "2", "--max-failures", "3") == 0
    captured = capsys.readouterr()
    assert "already complete" in captured.out
    assert "silent" in captured.out and "no_audio_track" in captured.out  # the failure summary


def test_workers_give_the_same_vectors_as_one_process(prepared, librosa_file):
    out = prepared / "calls" / "librosa-inline.h5"
    assert _extract(prepared, "--extractor", "librosa", "--workers", "1", "--max-failures", "3", "--out", str(out)) == 0
    np.testing.assert_allclose(read_features(out).features, read_features(librosa_file).features, rtol=1e-5, atol=1e-5)


def test_opensmile_through_the_cli(prepared):
    need_opensmile()
    assert _extract(prepared, "--extractor", "opensmile", "--workers", "1", "--max-failures", "3") == 0
    f = read_features(prepared / "calls" / "audio-opensmile-eGeMAPSv02.h5")
    assert f.dim == 88 and f.attrs["feature_set"] == "eGeMAPSv02"
    assert {uid: kind for uid, kind, _ in f.errors} == BROKEN


def test_too_many_failures_fail_the_command(prepared, capsys):
    out = prepared / "calls" / "strict.h5"
    assert _extract(prepared, "--extractor", "librosa", "--workers", "1", "--max-failures", "0", "--out", str(out)) == 1
    assert "3 of 16 items failed" in capsys.readouterr().err
