"""Audio decoding (extractors.audio_io) on the real shared media and on broken files written here."""

from __future__ import annotations

import av
import numpy as np
import pytest
import soundfile as sf
from audio_helpers import (
    SR,
    file_utterance,
    stm_utterances,
    write_garbage,
    write_silent_wav,
    write_truncated_wav,
)

from extractors.audio_io import (
    AudioInputConfig,
    load_audio,
    load_utterance_audio,
    rms_dbfs,
    utterance_segment,
)
from extractors.base import ItemError


def _kind(call) -> str:
    with pytest.raises(ItemError) as info:
        call()
    return info.value.kind


def test_stm_segments_decode_to_their_length(media_dir):
    whole = load_audio(media_dir / "dialogue-sample.wav")
    assert whole.dtype == np.float32 and whole.ndim == 1 and whole.size == 30 * SR
    utterances = stm_utterances(media_dir)
    assert len(utterances) == 13
    for u in utterances:
        x = load_utterance_audio(u, AudioInputConfig())
        first, last = round(u.start * SR), round(u.end * SR)
        assert x.dtype == np.float32 and x.ndim == 1
        assert x.size == last - first
        np.testing.assert_array_equal(x, whole[first:last])  # the seek lands on the exact sample
        assert -45 < rms_dbfs(x) < -15


def test_pyav_backend_cuts_the_same_samples_as_soundfile(media_dir):
    wav = media_dir / "dialogue-sample.wav"
    for start, end in [(6.68, 7.16), (24.058, 28.425)]:
        np.testing.assert_array_equal(load_audio(wav, start, end, backend="av"), load_audio(wav, start, end))


def test_emotional_speech_clips(media_dir):
    clips = sorted((media_dir / "emotional-speech").glob("*.wav"))
    assert len(clips) == 6
    for path in clips:
        x = load_audio(path)
        assert x.size == sf.info(path).frames  # already 16 kHz mono: no resampling
        assert np.isfinite(x).all() and rms_dbfs(x) > -30


def test_mp3_track_of_an_mp4_is_decoded_and_resampled(media_dir):
    x = load_audio(media_dir / "single_face.mp4")  # mp3, 44.1 kHz stereo inside mp4
    assert abs(x.size / SR - 2.419) < 0.02
    assert np.isfinite(x).all() and np.abs(x).max() <= 1.0


@pytest.mark.parametrize("name,start", [("single_face.mp4", 1.2), ("no_face.mp4", 3.0), ("face_noface.mov", 4.5)])
def test_container_seek_is_sample_exact(media_dir, name, start):
    """A segment read after seeking equals the same samples of a whole-file decode (native rate)."""
    path = media_dir / name
    rate = av.open(str(path)).streams.audio[0].rate
    with av.open(str(path)) as container:
        first_time = next(container.decode(audio=0)).time  # the .mov's audio starts at 2.43 s
    whole = load_audio(path, sr=rate, silence_dbfs=None)
    seg = load_audio(path, start, start + 0.5, sr=rate, silence_dbfs=None)
    offset = round((start - first_time) * rate)
    assert seg.size == round(0.5 * rate)
    np.testing.assert_array_equal(seg, whole[offset : offset + seg.size])


def test_video_without_audio_track(media_dir):
    with pytest.raises(ItemError) as info:
        load_audio(media_dir / "carphone_pristine.mp4")
    assert info.value.kind == "no_audio_track" and "carphone_pristine.mp4" in info.value.message


def test_corrupt_files(tmp_path, media_dir):
    truncated = write_truncated_wav(tmp_path / "cut.wav", media_dir / "dialogue-sample.wav")
    with pytest.raises(ItemError, match="truncated") as info:
        load_audio(truncated)
    assert info.value.kind == "corrupt"
    assert _kind(lambda: load_audio(write_garbage(tmp_path / "garbage.wav"))) == "corrupt"
    assert _kind(lambda: load_audio(write_garbage(tmp_path / "garbage.mp4"))) == "corrupt"
    mp4 = (media_dir / "single_face.mp4").read_bytes()
    (tmp_path / "head.mp4").write_bytes(mp4[: len(mp4) // 2])  # index (moov) at the end: lost
    assert _kind(lambda: load_audio(tmp_path / "head.mp4")) == "corrupt"


def test_truncated_streamable_mp4_is_corrupt_not_short(tmp_path, media_dir):
    """With the index first, ffmpeg decodes a cut file silently to its end; the declared length tells."""
    remuxed = tmp_path / "faststart.mp4"
    with av.open(str(media_dir / "single_face.mp4")) as src, \
            av.open(str(remuxed), "w", options={"movflags": "faststart"}) as dst:
        out = dst.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    assert load_audio(remuxed).size > 2 * SR
    data = remuxed.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ItemError, match="truncated") as info:
        load_audio(cut)
    assert info.value.kind == "corrupt"


def test_silence_is_refused(tmp_path):
    with pytest.raises(ItemError, match="every sample is zero") as info:
        load_audio(write_silent_wav(tmp_path / "zeros.wav"))
    assert info.value.kind == "silent"
    hiss = tmp_path / "hiss.wav"
    sf.write(hiss, np.random.default_rng(0).normal(0, 1e-4, SR).astype(np.float32), SR, subtype="FLOAT")  # -80 dBFS
    assert _kind(lambda: load_audio(hiss)) == "silent"
    assert load_audio(hiss, silence_dbfs=-90).size == SR
    assert load_audio(hiss, silence_dbfs=None).size == SR


def test_room_tone_is_not_silence(media_dir):
    """single_face.mp4 holds only room noise at about -62 dBFS: real audio, so it is kept."""
    x = load_audio(media_dir / "single_face.mp4")
    assert -70 < rms_dbfs(x) < -55


def test_missing_empty_and_bad_segments(tmp_path, media_dir):
    wav = media_dir / "dialogue-sample.wav"
    assert _kind(lambda: load_audio(None)) == "missing"
    assert _kind(lambda: load_audio(tmp_path / "nope.wav")) == "missing"
    (tmp_path / "zero.wav").write_bytes(b"")
    assert _kind(lambda: load_audio(tmp_path / "zero.wav")) == "empty"
    assert _kind(lambda: load_audio(wav, 10.0, 10.01)) == "empty"  # below min_seconds
    assert _kind(lambda: load_audio(wav, 5.0, 4.0)) == "bad_segment"
    assert _kind(lambda: load_audio(wav, -1.0, 2.0)) == "bad_segment"
    assert _kind(lambda: load_audio(wav, 31.0, 32.0)) == "bad_segment"
    assert _kind(lambda: load_audio(wav, 20.0, 35.0)) == "bad_segment"
    assert _kind(lambda: load_audio(media_dir / "single_face.mp4", 5.0, 6.0)) == "bad_segment"
    assert load_audio(wav, 29.5, 30.3).size == SR // 2  # an end a little past the file is clipped


def test_stereo_44k_flac_becomes_16k_mono(tmp_path):
    t = np.arange(44100) / 44100
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([left, right], 1), 44100)
    x = load_audio(path)
    assert x.size == SR
    assert abs(np.abs(x[1000:-1000]).max() - 0.3) < 0.01  # the channel average


def test_iemocap_sentence_wavs_ignore_video_times(media_dir):
    u = file_utterance("Ses01F_impro01_F000", media_dir / "emotional-speech" / "00.wav")
    u.start, u.end = 12.0, 14.5  # where the turn lies in the dialogue avi
    assert utterance_segment(u) == (12.0, 14.5)
    u.extra["audio_whole_file"] = True
    assert utterance_segment(u) == (None, None)
    assert load_utterance_audio(u, AudioInputConfig()).size == sf.info(u.audio_path).frames


def test_errors_name_the_utterance(tmp_path):
    u = file_utterance("dia3_utt7", tmp_path / "absent.mp4")
    with pytest.raises(ItemError, match="utterance dia3_utt7: .*absent.mp4 does not exist"):
        load_utterance_audio(u, AudioInputConfig())
