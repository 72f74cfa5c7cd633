"""Speed of the CPU audio extractors on the real shared media.

Items: the 13 utterances of dialogue-sample.wav cut by its .stm file, the 6 emotional-speech clips and
the mp3 track of single_face.mp4 (20 items, 46 s of speech), repeated ``--repeat`` times under new ids.

1. Real-time factor per core: seconds of audio processed per second of CPU time of this process (one
   thread: BLAS and torch limited to 1), decoding included; median of ``--runs``. Baselines in the same
   process: decoding alone, and librosa with pYIN pitch (the slower alternative to the default YIN).
2. Worker speed-up through the extraction runner (``mmemolr extract --workers N``): wall-clock seconds
   for all items with 1 worker (in process) and with N worker processes; median of ``--runs``; the ratio
   is the speed-up (target: at least 1.7x for 2 workers on an idle 2-core machine). The pool's start-up
   (once per process) is reported on its own.

  .venv/bin/python benchmarks/bench_audio.py [--repeat 100] [--runs 3] [--workers 2] [--no-opensmile]

Numbers from a busy machine are rough; rerun it idle before quoting them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from extractors.audio_io import AudioInputConfig, load_utterance_audio
from extractors.audio_librosa import LibrosaConfig, LibrosaExtractor
from extractors.base import Extractor, ItemError
from mmemolr.corpus.model import Corpus, Dialogue, Utterance
from mmemolr.extract import run_extraction
from mmemolr.paths import shared_dir
from mmemolr.tables import format_table


def base_items(media: Path) -> list[Utterance]:
    """The 20 real utterances (segments of the dialogue, clips, the audio of a video)."""
    items = []
    wav = media / "dialogue-sample.wav"
    for line in (media / "dialogue-sample.stm").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6:
            items.append(Utterance(id=f"stm{len(items)}", dialogue_id="", index=0, speaker=parts[2], text=parts[5],
                                   label="neutral", split="train", audio_path=str(wav),
                                   start=float(parts[3]), end=float(parts[4])))
    files = sorted((media / "emotional-speech").glob("*.wav")) + [media / "single_face.mp4"]
    for path in files:
        items.append(Utterance(id=path.stem, dialogue_id="", index=0, speaker="A", text="", label="neutral",
                               split="train", audio_path=str(path)))
    return items


def repeated_corpus(items: list[Utterance], repeat: int) -> Corpus:
    dialogues = []
    for r in range(repeat):
        did = f"copy{r}"
        utts = [Utterance(id=f"{did}_{u.id}", dialogue_id=did, index=i, speaker=u.speaker, text=u.text,
                          label=u.label, split="train", audio_path=u.audio_path, start=u.start, end=u.end)
                for i, u in enumerate(items)]
        dialogues.append(Dialogue(did, "train", utts))
    return Corpus("bench-audio", ["neutral"], dialogues)


def audio_seconds(items: list[Utterance]) -> float:
    return sum(load_utterance_audio(u, AudioInputConfig()).size for u in items) / 16000


def cpu_seconds(work: Callable[[], object], runs: int) -> float:
    """Median CPU seconds of this process for ``work`` (after one warm-up call)."""
    work()
    times = []
    for _ in range(runs):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return statistics.median(times)


def real_time_factors(items: list[Utterance], extractors: dict[str, Extractor], runs: int) -> list[list]:
    from threadpoolctl import threadpool_limits

    seconds = audio_seconds(items)
    corpus = repeated_corpus(items, 1)
    rows = []
    with threadpool_limits(limits=1):
        decode = cpu_seconds(lambda: [load_utterance_audio(u, AudioInputConfig()) for u in items], runs)
        rows.append(["decode only (baseline)", seconds, decode, seconds / decode, 1.0])
        for name, extractor in extractors.items():
            def work(extractor: Extractor = extractor) -> None:
                out = extractor.extract_batch(items, corpus)
                bad = [o for o in out if isinstance(o, ItemError)]
                assert not bad, bad
            cpu = cpu_seconds(work, runs)
            rows.append([name, seconds, cpu, seconds / cpu, cpu / decode])
    return rows


def timed_runs(corpus: Corpus, extractor: Extractor, workers: int, runs: int, folder: Path) -> float:
    """Median wall seconds of ``runs`` extractions into a fresh file."""
    walls = []
    for run in range(runs):
        out = folder / f"{extractor.name}-{workers}-{run}.h5"
        start = time.perf_counter()
        result = run_extraction(corpus, extractor, out, workers=workers, overwrite=True, progress=False)
        walls.append(time.perf_counter() - start)
        assert result.complete and not result.errors, result.errors
        out.unlink()
    return statistics.median(walls)


def startup_seconds(corpus: Corpus, extractor: Extractor, workers: int, folder: Path) -> float:
    """Wall seconds of a one-dialogue extraction with ``workers`` processes: the pool's start-up.

    The first pool of a process also starts the fork server, which imports the extractor's
    ``worker_preload`` modules once; later pools fork from it and start in a fraction of that.
    """
    first = corpus.dialogues[0]
    one = Corpus(corpus.name, corpus.labels, [Dialogue(first.id, first.split, first.utterances[:2])])
    out = folder / f"{extractor.name}-startup.h5"
    start = time.perf_counter()
    run_extraction(one, extractor, out, workers=workers, overwrite=True, progress=False)
    elapsed = time.perf_counter() - start
    out.unlink()
    return elapsed


def speedups(corpus: Corpus, extractors: dict[str, Extractor], workers: int, runs: int) -> list[list]:
    n = len(corpus.utterance_ids())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, extractor in extractors.items():
            startup = startup_seconds(corpus, extractor, workers, Path(tmp))
            one = timed_runs(corpus, extractor, 1, runs, Path(tmp))
            many = timed_runs(corpus, extractor, workers, runs, Path(tmp))
            rows.append([name, n, startup, one, many, n / one, n / many, one / many])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=100, help="copies of the 20 real items for the worker runs")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-opensmile", action="store_true", help="skip openSMILE (the optional extra)")
    args = parser.parse_args()

    media = shared_dir() / "data" / "media"
    if not (media / "dialogue-sample.stm").exists():
        raise SystemExit(f"{media} has no dialogue-sample.stm; set MMEMOLR_SHARED to the shared/ folder")
    items = base_items(media)
    for i, u in enumerate(items):
        u.dialogue_id, u.index = "base", i

    per_core: dict[str, Extractor] = {"librosa (yin, default)": LibrosaExtractor()}
    parallel: dict[str, Extractor] = {"librosa": per_core["librosa (yin, default)"]}
    per_core["librosa (pyin)"] = LibrosaExtractor(LibrosaConfig(pitch="pyin"))
    if not args.no_opensmile:
        from extractors.audio_opensmile import OpenSmileConfig, OpenSmileExtractor

        per_core["opensmile eGeMAPSv02"] = OpenSmileExtractor()
        per_core["opensmile ComParE_2016"] = OpenSmileExtractor(OpenSmileConfig(feature_set="ComParE_2016"))
        parallel["opensmile eGeMAPSv02"] = per_core["opensmile eGeMAPSv02"]

    print(f"machine: {os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    rows = real_time_factors(items, per_core, args.runs)
    print(format_table(["extractor", "audio s", "CPU s", "x real time / core", "CPU vs decode"], rows,
                       title=f"\nReal-time factor per core ({len(items)} real items, median of {args.runs} runs)"))
    yin = next(r for r in rows if r[0].startswith("librosa (yin"))
    pyin = next(r for r in rows if r[0] == "librosa (pyin)")
    print(f"pYIN costs {pyin[2] / yin[2]:.1f}x the CPU of the default YIN")

    corpus = repeated_corpus(items, args.repeat)
    rows = speedups(corpus, parallel, args.workers, args.runs)
    print(format_table(["extractor", "items", "first pool start-up s", "1 worker s", f"{args.workers} workers s", "items/s (1)",
                        f"items/s ({args.workers})", "speed-up"], rows,
                       title=f"\nRunner with --workers {args.workers} vs 1 (wall clock, median of {args.runs} runs)"))
    print("(start-up: once per process, not in the timed runs; it is the fork server importing the extractor's "
          "worker_preload modules)")
    print(f"(load average now {', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"{np.mean([r[-1] for r in rows]):.2f}x mean speed-up)")


if __name__ == "__main__":
    main()
