"""MELD adapter on the real CSVs in ../shared, plus malformed files written by the tests."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mmemolr.corpus import CorpusError, load_corpus
from mmemolr.corpus.meld import CSV_FILES
from mmemolr.corpus.readers import parse_time


def test_real_meld_counts(meld_corpus):
    by_split = {s: sum(1 for _ in meld_corpus.utterances(s)) for s in ("train", "dev", "test")}
    assert by_split == {"train": 9989, "dev": 1109, "test": 2610}
    dialogues = {s: len(meld_corpus.split_dialogues(s)) for s in ("train", "dev", "test")}
    assert dialogues == {"train": 1038, "dev": 114, "test": 280}
    assert meld_corpus.labels == ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
    assert "train/dia60" not in {d.id for d in meld_corpus.dialogues}
    first = meld_corpus.dialogues[0].utterances[0]
    assert first.id == "train/dia0_utt0" and first.speaker == "Chandler"
    assert first.extra["sentiment"] == "neutral"
    assert "company’s" in first.text


def test_real_meld_utterance_id_gaps_are_kept_in_ids(meld_corpus):
    gaps = 0
    for d in meld_corpus.dialogues:
        source_ids = [u.extra["utterance_id"] for u in d.utterances]
        assert source_ids == sorted(source_ids)
        assert [u.index for u in d.utterances] == list(range(len(d)))
        gaps += source_ids != list(range(len(d)))
    assert gaps == 76


def test_legacy_cp1252_repaired_to_the_utf8_text(meld_root, meld_corpus):
    legacy = load_corpus("meld", meld_root / "legacy-cp1252")
    assert legacy.report["repaired_c1_utterances"] > 0
    new = {u.id: u.text for u in meld_corpus.utterances()}
    old = {u.id: u.text for u in legacy.utterances()}
    assert old.keys() == new.keys() and len(old) == 13708
    exact = sum(old[k] == new[k] for k in new)
    normalised = sum(" ".join(old[k].split()) == " ".join(new[k].split()) for k in new)
    assert normalised == 13708
    assert 13708 - exact == 5  # differ only by a no-break space
    assert not any("\x92" in t for t in old.values())


@pytest.mark.parametrize(
    "text, seconds",
    [("00:13:23,916", 803.916), ("0:13:40,766", 820.766), ("00:00:02.877", 2.877), ("12.5", 12.5)],
)
def test_time_formats(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


def test_real_meld_times_parsed(meld_corpus):
    u = meld_corpus.dialogues[0].utterances[0]
    assert u.extra["episode_start"] == pytest.approx(16 * 60 + 16.059)


HEADER = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
          "Season", "Episode", "StartTime", "EndTime"]


def write_meld(root: Path, rows_by_split: dict[str, list[list[str]]] | None = None, header=HEADER) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    default = [["1", "Hi there.", "Ross", "joy", "positive", "0", "0", "1", "1", "00:00:01,000", "0:00:02,500"],
               ["2", "Hello.", "Rachel", "neutral", "neutral", "0", "2", "1", "1", "00:00:03,000", "00:00:04,000"]]
    for split, name in CSV_FILES.items():
        rows = (rows_by_split or {}).get(split, default)
        with open(root / name, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
    return root


def test_media_paths_from_raw_release_layout(tmp_path):
    root = write_meld(tmp_path / "csv")
    media = tmp_path / "MELD.Raw"
    for split_dir, sub in (("train", "train_splits"), ("dev", "dev_splits_complete"), ("test", "output_repeated_splits_test")):
        folder = media / split_dir / sub
        folder.mkdir(parents=True)
        (folder / "dia0_utt0.mp4").write_bytes(b"x")
    corpus = load_corpus("meld", root, media_root=media)
    u0, u2 = corpus.dialogues[0].utterances
    assert u0.video_path.endswith("train/train_splits/dia0_utt0.mp4") and u0.audio_path == u0.video_path
    assert u2.video_path is None and u2.extra["utterance_id"] == 2
    assert corpus.report["missing_media"] == 3
    with pytest.raises(CorpusError, match="dia0_utt2.mp4 is missing"):
        load_corpus("meld", root, media_root=media, require_media=True)


def test_missing_column_names_file_and_column(tmp_path):
    root = write_meld(tmp_path, header=[h for h in HEADER if h != "Emotion"],
                      rows_by_split={s: [["1", "Hi", "Ross", "positive", "0", "0", "1", "1", "", ""]] for s in CSV_FILES})
    with pytest.raises(CorpusError, match=r"train_sent_emo.csv: missing column\(s\) Emotion"):
        load_corpus("meld", root)


def test_unknown_label_names_row(tmp_path):
    rows = {"dev": [["1", "Hi", "Ross", "happy", "positive", "0", "0", "1", "1", "", ""]]}
    with pytest.raises(CorpusError, match=r"dev_sent_emo.csv: line 2: unknown emotion 'happy'"):
        load_corpus("meld", write_meld(tmp_path, rows))


def test_duplicate_utterance_names_both_rows(tmp_path):
    row = ["1", "Hi", "Ross", "joy", "positive", "3", "1", "1", "1", "", ""]
    with pytest.raises(CorpusError, match=r"test_sent_emo.csv: line 3: duplicate utterance dia3_utt1 \(first at line 2\)"):
        load_corpus("meld", write_meld(tmp_path, {"test": [row, row]}))


def test_undecodable_text_names_file_and_line(tmp_path):
    root = write_meld(tmp_path)
    data = (root / "train_sent_emo.csv").read_bytes().replace(b"Hello.", b"Hel\x81\x8dlo.")
    (root / "train_sent_emo.csv").write_bytes(data)
    with pytest.raises(CorpusError, match=r"train_sent_emo.csv: line 3: bytes are neither UTF-8 nor cp1252"):
        load_corpus("meld", root)


def test_bad_integer_and_missing_file(tmp_path):
    rows = {"train": [["1", "Hi", "Ross", "joy", "positive", "zero", "0", "1", "1", "", ""]]}
    with pytest.raises(CorpusError, match="line 2: column Dialogue_ID must be an integer"):
        load_corpus("meld", write_meld(tmp_path / "a", rows))
    root = write_meld(tmp_path / "b")
    (root / "dev_sent_emo.csv").unlink()
    with pytest.raises(CorpusError, match="dev_sent_emo.csv: MELD file not found"):
        load_corpus("meld", root)


def test_a_cp1252_line_leaves_the_utf8_lines_intact(tmp_path):
    rows = {"train": [["1", "I won’t – café", "Ross", "joy", "positive", "0", "0", "1", "1", "", ""],
                      ["2", "STRAY", "Rachel", "neutral", "neutral", "0", "1", "1", "1", "", ""]]}
    root = write_meld(tmp_path, rows)
    path = root / "train_sent_emo.csv"
    path.write_bytes(path.read_bytes().replace(b"STRAY", b"caf\xe9 \x92"))
    corpus = load_corpus("meld", root)
    first, second = corpus.dialogues[0].utterances
    assert first.text == "I won’t – café" and second.text == "café ’"
    assert corpus.report["cp1252_lines"] == 1 and f"{path}: 1 line(s)" in corpus.report["warnings"][0]


def test_real_meld_with_one_stray_byte_keeps_every_other_line(tmp_path, meld_root, meld_corpus):
    """The official files hold thousands of UTF-8 ’ and é: one cp1252 byte elsewhere must not touch them."""
    for name in CSV_FILES.values():
        data = (meld_root / name).read_bytes()
        if name == "dev_sent_emo.csv":
            lines = data.split(b"\n")
            lines[5] = lines[5].replace(b",", b"\xe9,", 1)  # line 6: a legacy byte at the end of its first field
            data = b"\n".join(lines)
        (tmp_path / name).write_bytes(data)
    corpus = load_corpus("meld", tmp_path)
    changed = [u.id for u, v in zip(meld_corpus.utterances(), corpus.utterances()) if u.text != v.text]
    assert changed == [] and corpus.report["cp1252_lines"] == 1  # the first field is Sr No., not the text
    assert f"{tmp_path / 'dev_sent_emo.csv'}: 1 line(s)" in corpus.report["warnings"][0]
