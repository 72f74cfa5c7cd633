"""Mixed-media corpora: a row without media for a modality is absent (masked, counted), not a failure."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from audio_helpers import stm_rows

from mmemolr.cli.main import main
from mmemolr.store import read_features

COLUMNS = ["dialogue_id", "utterance_index", "speaker", "text", "audio_path", "video_path", "start", "end"]


def _write(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, media_dir) -> Path:
    """A label-free manifest: a telephone call (audio only), a face video with sound (audio + visual) and
    a typed chat (text only); prepared as ``mixed`` in the returned features folder."""
    root = tmp_path_factory.mktemp("mixed")
    wav, video = media_dir / "dialogue-sample.wav", media_dir / "single_face.mp4"
    rows = [{"dialogue_id": "call", "utterance_index": i, "speaker": spk, "text": text, "audio_path": str(wav),
             "video_path": "", "start": start, "end": end} for i, (spk, start, end, text) in enumerate(stm_rows(media_dir))]
    rows += [{"dialogue_id": "video", "utterance_index": i, "speaker": "A", "text": text, "audio_path": str(video),
              "video_path": str(video), "start": start, "end": end}
             for i, (start, end, text) in enumerate([(0.0, 1.2, "look at me"), (1.2, 2.4, "still here")])]
    rows += [{"dialogue_id": "chat", "utterance_index": i, "speaker": spk, "text": text, "audio_path": "",
              "video_path": "", "start": "", "end": ""} for i, (spk, text) in enumerate([("A", "hi"), ("B", "yo")])]
    features = root / "features"
    assert main(["corpus", "prepare", "--corpus", "manifest", "--root", str(_write(root / "manifest.csv", rows)),
                 "--name", "mixed", "--out", str(features / "mixed")]) == 0
    return features


def _extract(features: Path, *args: str) -> int:
    return main(["extract", "--corpus", "mixed", "--features-dir", str(features), "--no-progress", "--workers", "1",
                 *args])


@pytest.mark.parametrize("modality, present, reason", [
    ("audio", 15, "the utterance has no audio file"),
    ("visual", 2, "the utterance has no video file"),
])
def test_absent_media_is_masked_and_reported_not_failed(mixed, capsys, modality, present, reason):
    assert _extract(mixed, "--modality", modality) == 0  # the default --max-failures (1%)
    out = capsys.readouterr().out
    absent = 17 - present
    assert f"{absent} of 17 items absent ({reason}: {absent})" in out and "masked, not failures" in out
    assert f"no failures: all {present} items with media have features" in out
    assert f"{present} with features, {absent} absent" in out
    ff = read_features(next((mixed / "mixed").glob(f"{modality}-*.h5")))
    assert ff.available.sum() == present and ff.done.all()
    assert {kind for _, kind, _ in ff.errors} == {"absent"} and len(ff.errors) == absent
    assert not ff.features[~ff.available].any()  # nothing invented for the absent rows
    assert main(["features", "inspect", str(ff.path)]) == 0
    coverage = {line.rsplit(maxsplit=1)[0]: line.rsplit(maxsplit=1)[1]
                for line in capsys.readouterr().out.splitlines() if line.startswith(("absent", "failed"))}
    assert coverage == {"absent (nothing to extract)": str(absent), "failed": "0"}


def test_named_media_that_cannot_be_read_still_fails(mixed, tmp_path, capsys, media_dir):
    rows = [{"dialogue_id": "d", "utterance_index": i, "speaker": "A", "text": "t", "audio_path": str(path),
             "video_path": "", "start": "", "end": ""}
            for i, path in enumerate([media_dir / "dialogue-sample.wav", tmp_path / "gone.wav", ""])]
    features = tmp_path / "features"
    assert main(["corpus", "prepare", "--corpus", "manifest", "--root", str(_write(tmp_path / "m.csv", rows)),
                 "--name", "broken", "--out", str(features / "broken")]) == 0
    code = main(["extract", "--corpus", "broken", "--features-dir", str(features), "--no-progress", "--workers", "1",
                 "--modality", "audio"])
    captured = capsys.readouterr()
    assert code == 1 and "1 of 2 items failed, more than --max-failures 1% allows (0)" in captured.err
    assert "1 of 3 items absent" in captured.out and "missing" in captured.out
    ff = read_features(features / "broken" / "audio-librosa.h5")
    assert np.array_equal(ff.available, [True, False, False])
    assert sorted(kind for _, kind, _ in ff.errors) == ["absent", "missing"]
