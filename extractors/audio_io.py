"""Audio decoding for the audio extractors: one utterance -> 16 kHz mono float32 samples.

Sources: audio files libsndfile reads (wav, flac, ogg, aiff; read with ``soundfile``, which seeks
exactly) and any container ffmpeg knows (mp4, avi, mov, mkv, mp3, m4a; decoded with PyAV, no system
ffmpeg needed). ``start``/``end`` are seconds on the media file's timeline (``None``: whole file); only
that segment is decoded. Channels are averaged to mono and resampled with soxr.

Every failure is an :class:`~extractors.base.ItemError` whose ``kind`` is one of:

``missing``         no path, or the file does not exist
``corrupt``         the file cannot be decoded, or it is truncated (shorter than its header declares)
``no_audio_track``  a video container without an audio stream
``bad_segment``     start/end are negative, reversed, or lie outside the file
``empty``           the file or segment holds no audio (or less than ``min_seconds``)
``silent``          every sample is zero, or the RMS level is below ``silence_dbfs``

Silence threshold: an utterance whose RMS level is below -70 dBFS (RMS 0.00032 of full scale, about
10 steps of 16-bit audio) is ``silent``. The check catches dead tracks (all zeros, dither near -90 dBFS,
a muted microphone), not pauses: it is no voice-activity detector. Speech sits far above it (the
telephone speech in the test data: -40 to -23 dBFS), and so does room tone (the face video in the test
data has -62 dBFS of room noise and is kept). Extractors expose it as the config field ``silence_dbfs``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from extractors.base import ExtractorConfig, ItemError
from mmemolr.corpus.model import Utterance

TARGET_SAMPLE_RATE = 16000
SILENCE_DBFS = -70.0
MIN_SECONDS = 0.025  # one 25 ms analysis window
# Annotated segment ends may overshoot the media by rounding; more than this means mismatched media.
END_TOLERANCE_S = 0.5
# Formats libsndfile decodes with exact sample seeking; everything else goes through PyAV.
SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".aifc"}
# Decode this much before a seek target so compressed codecs (mp3 bit reservoir, AAC overlap) have
# their pre-roll and the first kept sample is exact.
_SEEK_PREROLL_S = 1.0


@dataclass
class AudioInputConfig(ExtractorConfig):
    """How utterance audio is read; the base of every audio extractor's config."""

    sample_rate: int = TARGET_SAMPLE_RATE
    silence_dbfs: float = SILENCE_DBFS  # RMS level below which an utterance counts as silent
    min_seconds: float = MIN_SECONDS  # shorter utterances are 'empty'


def utterance_segment(utt: Utterance) -> tuple[float | None, float | None]:
    """The (start, end) to cut from ``utt.audio_path``.

    ``extra["audio_whole_file"]`` marks corpora whose audio file already is the utterance while the
    times locate it in a longer video (IEMOCAP's sentence wavs next to dialogue-level avis).
    """
    if utt.extra.get("audio_whole_file"):
        return None, None
    return utt.start, utt.end


def load_utterance_audio(utt: Utterance, config: AudioInputConfig) -> np.ndarray:
    """The utterance's samples as ``config`` asks; ItemError names the utterance id."""
    start, end = utterance_segment(utt)
    try:
        return load_audio(
            utt.audio_path, start, end, sr=config.sample_rate,
            silence_dbfs=config.silence_dbfs, min_seconds=config.min_seconds,
        )
    except ItemError as err:
        raise ItemError(err.kind, f"utterance {utt.id}: {err.message}") from None


def load_audio(
    path: str | Path | None,
    start: float | None = None,
    end: float | None = None,
    sr: int = TARGET_SAMPLE_RATE,
    *,
    silence_dbfs: float | None = SILENCE_DBFS,
    min_seconds: float = MIN_SECONDS,
    backend: str = "auto",
) -> np.ndarray:
    """Decode ``path`` (or its ``[start, end)`` seconds) to mono float32 at ``sr`` Hz.

    ``backend``: ``auto`` (soundfile for wav/flac/ogg/aiff, PyAV otherwise), ``soundfile`` or ``av``.
    ``silence_dbfs=None`` disables the silence check. Raises ItemError (see the module docstring).
    """
    if not path:
        raise ItemError("missing", "no audio file is given for this utterance")
    path = Path(path)
    if not path.exists():
        raise ItemError("missing", f"{path} does not exist")
    if not path.is_file():
        raise ItemError("corrupt", f"{path} is not a file")
    if path.stat().st_size == 0:
        raise ItemError("empty", f"{path} is empty (0 bytes)")
    _check_segment(path, start, end)
    _check_riff_length(path)
    if backend not in ("auto", "soundfile", "av"):
        raise ValueError(f"backend must be auto, soundfile or av, not {backend!r}")
    if backend == "soundfile" or (backend == "auto" and path.suffix.lower() in SOUNDFILE_SUFFIXES):
        samples, rate = _read_soundfile(path, start, end)
    else:
        samples, rate = _read_av(path, start, end)
    return _finish(path, samples, rate, sr, silence_dbfs, min_seconds)


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale square wave is 0 dBFS)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


# -- checks ------------------------------------------------------------------------------------------
def _check_segment(path: Path, start: float | None, end: float | None) -> None:
    for name, value in (("start", start), ("end", end)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ItemError("bad_segment", f"{path}: segment {name}={value} is not a non-negative number of seconds")
    if start is not None and end is not None and end <= start:
        raise ItemError("bad_segment", f"{path}: segment end {end} s is not after its start {start} s")


def _check_riff_length(path: Path) -> None:
    """A WAV whose data chunk is shorter than its header declares was cut off (e.g. a killed copy).

    libsndfile and ffmpeg both silently return the shorter audio, so the header is checked here.
    """
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        size = path.stat().st_size
        position = 12
        while position + 8 <= size:
            fh.seek(position)
            chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"data":
                # 0 and 0xFFFFFFFF mean "length unknown" (streamed writers); RF64 keeps it elsewhere.
                if chunk_size in (0, 0xFFFFFFFF):
                    return
                available = size - position - 8
                if available < chunk_size:
                    raise ItemError(
                        "corrupt",
                        f"{path} is truncated: its header declares {chunk_size} bytes of audio but the file "
                        f"holds {available}; copy the file again from its source",
                    )
                return
            position += 8 + chunk_size + (chunk_size & 1)  # chunks are word aligned


def _finish(
    path: Path, samples: np.ndarray, rate: int, sr: int, silence_dbfs: float | None, min_seconds: float
) -> np.ndarray:
    """Mono-mix, resample, and refuse what is not usable audio."""
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if samples.size == 0:
        raise ItemError("empty", f"{path}: the file or segment holds no audio samples")
    if not np.isfinite(samples).all():
        raise ItemError("corrupt", f"{path}: decoded audio contains NaN or infinite samples")
    if rate != sr:
        import soxr

        samples = soxr.resample(samples, rate, sr, quality="HQ")
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    seconds = samples.size / sr
    if seconds < min_seconds:
        raise ItemError("empty", f"{path}: the audio lasts {seconds:.3f} s, shorter than the minimum {min_seconds} s")
    if silence_dbfs is not None:
        if not np.any(samples):
            raise ItemError("silent", f"{path}: every sample is zero")
        level = rms_dbfs(samples)
        if level < silence_dbfs:
            raise ItemError(
                "silent", f"{path}: RMS level {level:.1f} dBFS is below the silence threshold {silence_dbfs} dBFS"
            )
    return samples


# -- soundfile backend -------------------------------------------------------------------------------
def _read_soundfile(path: Path, start: float | None, end: float | None) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as fh:
            rate, frames = fh.samplerate, fh.frames
            first, last = _segment_frames(path, start, end, rate, frames)
            fh.seek(first)
            samples = fh.read(last - first, dtype="float32", always_2d=True)
    except ItemError:
        raise
    except (sf.LibsndfileError, RuntimeError) as err:
        # libsndfile refuses some valid files (odd WAV codecs); ffmpeg may still decode them.
        try:
            return _read_av(path, start, end)
        except ItemError as av_err:
            if av_err.kind != "corrupt":
                raise
            raise ItemError("corrupt", f"{path} cannot be decoded ({err})") from None
    if samples.shape[0] < last - first:
        raise ItemError(
            "corrupt", f"{path} is truncated: {samples.shape[0]} of {last - first} expected samples could be read"
        )
    return samples, rate


def _segment_frames(path: Path, start: float | None, end: float | None, rate: int, frames: int) -> tuple[int, int]:
    duration = frames / rate
    first = 0 if start is None else int(round(start * rate))
    if start is not None and first >= frames:
        raise ItemError("bad_segment", f"{path}: segment starts at {start} s but the audio lasts {duration:.3f} s")
    if end is None:
        return first, frames
    if end > duration + END_TOLERANCE_S:
        raise ItemError("bad_segment", f"{path}: segment ends at {end} s but the audio lasts {duration:.3f} s")
    return first, min(frames, int(round(end * rate)))


# -- PyAV backend ------------------------------------------------------------------------------------
def _read_av(path: Path, start: float | None, end: float | None) -> tuple[np.ndarray, int]:
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise ItemError("corrupt", f"{path} cannot be opened as audio or video ({_av_message(err)})") from None
    with container:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams})
            raise ItemError("no_audio_track", f"{path} has no audio track (streams: {', '.join(kinds) or 'none'})")
        stream = container.streams.audio[0]
        declared_end = _declared_end(stream)
        if start is not None and declared_end is not None and start >= declared_end:
            raise ItemError("bad_segment", f"{path}: segment starts at {start} s but the audio ends at {declared_end:.3f} s")
        if end is not None and declared_end is not None and end > declared_end + END_TOLERANCE_S:
            raise ItemError("bad_segment", f"{path}: segment ends at {end} s but the audio ends at {declared_end:.3f} s")
        try:
            samples, rate, decoded_end = _decode_av(container, stream, start, end)
        except av.error.FFmpegError as err:
            raise ItemError("corrupt", f"{path}: decoding failed ({_av_message(err)})") from None
    wanted_end = declared_end if end is None or declared_end is None else min(end, declared_end)
    if wanted_end is not None and decoded_end is not None:
        # Frame timing and encoder padding make small differences normal; seconds missing are not.
        if wanted_end - decoded_end > max(0.25, 0.02 * wanted_end):
            raise ItemError(
                "corrupt",
                f"{path} is truncated: decoding stopped at {decoded_end:.3f} s but the audio track should "
                f"reach {wanted_end:.3f} s; copy the file again from its source",
            )
    return samples, rate


def _declared_end(stream) -> float | None:
    """End time of the stream (seconds) as the container declares it, when it does."""
    if stream.duration is None or stream.time_base is None:
        return None
    begin = stream.start_time or 0
    return float((begin + stream.duration) * stream.time_base)


def _decode_av(container, stream, start: float | None, end: float | None) -> tuple[np.ndarray, int, float | None]:
    rate = stream.codec_context.sample_rate or stream.rate
    if start is not None and start > _SEEK_PREROLL_S and stream.time_base is not None:
        container.seek(int((start - _SEEK_PREROLL_S) / stream.time_base), stream=stream, backward=True)
    pieces: list[np.ndarray] = []
    next_time: float | None = None  # expected time of the next frame when pts are missing
    decoded_end: float | None = None
    for frame in container.decode(stream):
        rate = frame.sample_rate
        t0 = float(frame.time) if frame.pts is not None else next_time if next_time is not None else 0.0
        data = _frame_array(frame)
        t1 = t0 + data.shape[0] / rate
        next_time, decoded_end = t1, t1
        if start is not None and t1 <= start:
            continue
        lo = 0 if start is None else max(0, int(round((start - t0) * rate)))
        hi = data.shape[0] if end is None else min(data.shape[0], int(round((end - t0) * rate)))
        if hi > lo:
            pieces.append(data[lo:hi])
        if end is not None and t1 >= end:
            break
    if not pieces:
        return np.zeros((0, 1), dtype=np.float32), int(rate), decoded_end
    return np.concatenate(pieces, axis=0), int(rate), decoded_end


_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def _frame_array(frame) -> np.ndarray:
    """(samples, channels) float32 from any PyAV audio frame format."""
    fmt = frame.format.name
    base = fmt[:-1] if fmt.endswith("p") else fmt
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        array = array.T  # (channels, samples) -> (samples, channels)
    else:
        array = array.reshape(-1, channels)
    if base == "u8":
        return (array.astype(np.float32) - 128.0) / 128.0
    if base in _INT_SCALE:
        return (array.astype(np.float64) / _INT_SCALE[base]).astype(np.float32)
    return array.astype(np.float32, copy=False)


def _av_message(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err)
