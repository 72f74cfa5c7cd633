"""Speed of the visual extractors on the real shared media (frames per second through each stage).

Items: the four real videos (single_face.mp4, carphone_pristine.mp4, no_face.mp4, face_noface.mov) and the
two photos (single_face.jpg, multi_face.jpg), sampled at ``--fps`` frames per second, repeated ``--repeat``
times. Wall-clock seconds in this process, median of ``--runs`` after one warm-up; OpenCV and torch use
their default threads (what one ``mmemolr extract`` process gets).

1. Runner speed-up for ``hoglbp`` (cpu_parallel): ``run_extraction`` with 1 worker and with ``--workers N``.
   The worker runs come first, before this process runs any OpenCV work: a worker forked from a process
   whose OpenCV thread pool is running hangs in cv2.setNumThreads (the runner calls it in each worker).
2. Pipeline stages, each including the ones before it; the baseline is decoding the sampled frames alone:
   decode -> + Haar detection on a ``detect_size`` copy (and, for comparison, on the full frame) -> hoglbp
   (crop, HOG, LBP, pooling) -> timm (crop, embedding, pooling) with a ``--timm-model`` of RANDOM weights
   (allowed explicitly: speed does not depend on the weight values; the features would be meaningless).
3. Descriptor / embedding alone on ready face crops: crops per second.

  .venv/bin/python benchmarks/bench_visual.py [--repeat 3] [--runs 3] [--fps 5] [--workers 2]
      [--timm-model resnet18] [--device cpu|cuda]

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

from extractors.base import Extractor, ItemError
from extractors.faces import FaceConfig, FaceDetector, face_crops, sample_frames
from extractors.visual_hoglbp import HogLbpConfig, HogLbpExtractor
from extractors.visual_timm import TimmConfig, TimmExtractor
from mmemolr.corpus.model import Corpus, Dialogue, Utterance
from mmemolr.extract import run_extraction
from mmemolr.paths import shared_dir
from mmemolr.tables import format_table

MEDIA = ["single_face.mp4", "carphone_pristine.mp4", "no_face.mp4", "face_noface.mov", "single_face.jpg",
         "multi_face.jpg"]


def corpus_of(media: Path, repeat: int) -> Corpus:
    dialogues = []
    for r in range(repeat):
        did = f"copy{r}"
        utts = [Utterance(id=f"{did}_{name}", dialogue_id=did, index=i, speaker="A", text="",
                          label="neutral", split="train", video_path=str(media / name))
                for i, name in enumerate(MEDIA)]
        dialogues.append(Dialogue(did, "train", utts))
    return Corpus("bench-visual", ["neutral"], dialogues)


def wall(work: Callable[[], object], runs: int) -> float:
    """Median wall seconds of ``work`` after one warm-up call."""
    work()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def runner_speedup(corpus: Corpus, workers: int, runs: int, fps: float) -> list[list]:
    extractor = HogLbpExtractor(HogLbpConfig(fps=fps))
    n = len(corpus.utterance_ids())
    with tempfile.TemporaryDirectory() as tmp:
        seconds = {}
        for count in (workers, 1):  # workers first: the 1-worker run uses OpenCV threads in this process
            times = []
            for run in range(runs):
                out = Path(tmp) / f"w{count}-{run}.h5"
                start = time.perf_counter()
                result = run_extraction(corpus, extractor, out, workers=count, overwrite=True, progress=False)
                times.append(time.perf_counter() - start)
                assert result.complete and {e[1] for e in result.errors} == {"no_face"}, result.errors
            seconds[count] = statistics.median(times)
    return [[f"hoglbp, {count} worker(s)", n, seconds[count], n / seconds[count], seconds[1] / seconds[count]]
            for count in (1, workers)]


def stages(items: list[Utterance], corpus: Corpus, args: argparse.Namespace) -> list[list]:
    config = FaceConfig(fps=args.fps)
    frames = sum(len(list(sample_frames(u, config.fps, config.max_frames))) for u in items)
    detector = FaceDetector(config)
    full = FaceDetector(FaceConfig(fps=args.fps, detect_size=100_000))

    def decode() -> None:
        for u in items:
            for _ in sample_frames(u, config.fps, config.max_frames):
                pass

    def detect(det: FaceDetector) -> Callable[[], None]:
        def work() -> None:
            for u in items:
                for frame in sample_frames(u, config.fps, config.max_frames):
                    det.detect(frame.image)
        return work

    def extract(extractor: Extractor) -> Callable[[], None]:
        def work() -> None:
            out = extractor.extract_batch(items, corpus)
            assert {o.kind for o in out if isinstance(o, ItemError)} == {"no_face"}
        return work

    timm_ex = TimmExtractor(TimmConfig(model=args.timm_model, pretrained=False, allow_random_weights=True,
                                       fps=args.fps), device=args.device)
    timm_ex.feature_dim()  # load the model outside the timed runs
    work = {
        "decode sampled frames (baseline)": decode,
        f"+ detect on {config.detect_size}px copy": detect(detector),
        "+ detect on full frame (comparison)": detect(full),
        "hoglbp: + crop, HOG, LBP, pool": extract(HogLbpExtractor(HogLbpConfig(fps=args.fps))),
        f"timm {args.timm_model} (RANDOM weights) on {args.device}: + crop, embed, pool": extract(timm_ex),
    }
    rows = []
    base = None
    for name, fn in work.items():
        seconds = wall(fn, args.runs)
        base = base or seconds
        rows.append([name, frames, seconds, frames / seconds, len(items) / seconds, seconds / base])
    return rows


def crop_rates(items: list[Utterance], args: argparse.Namespace) -> list[list]:
    hog = HogLbpExtractor(HogLbpConfig(fps=args.fps))
    timm_ex = TimmExtractor(TimmConfig(model=args.timm_model, pretrained=False, allow_random_weights=True,
                                       fps=args.fps), device=args.device)
    timm_ex.feature_dim()
    rows = []
    for name, size, fn in [
        (f"hoglbp descriptor ({hog.crop_dim()}-d)", hog.config.crop_size,
         lambda crops: [hog.describe(c) for c in crops]),
        (f"timm {args.timm_model} embedding ({timm_ex.embed_dim()}-d, batch {timm_ex.config.forward_batch}, "
         f"{args.device})", timm_ex.input_hw, timm_ex.embed),
    ]:
        crops = []
        for u in items:
            try:
                crops += face_crops(u, hog.config, hog.detector, size).crops
            except ItemError:
                continue
        while len(crops) < 256:  # enough crops for several full forward batches
            crops += crops
        seconds = wall(lambda fn=fn, crops=crops: fn(crops), args.runs)
        rows.append([name, len(crops), seconds, len(crops) / seconds])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="copies of the 6 real media items")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--fps", type=float, default=5.0, help="frames sampled per second of video")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timm-model", default="resnet18", help="timm architecture (random weights)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    media = shared_dir() / "data" / "media"
    missing = [name for name in MEDIA if not (media / name).exists()]
    if missing:
        raise SystemExit(f"{media} lacks {', '.join(missing)}; set MMEMOLR_SHARED to the shared/ folder")
    corpus = corpus_of(media, args.repeat)
    items = list(corpus.utterances())
    print(f"machine: {os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"{len(items)} items ({len(MEDIA)} real media x {args.repeat}), {args.fps:g} frames/s sampled")

    rows = runner_speedup(corpus, args.workers, args.runs, args.fps)
    print(format_table(["run", "items", "wall s", "items/s", "speed-up"], rows,
                       title=f"\nRunner: hoglbp with --workers {args.workers} vs 1 (median of {args.runs})"))

    rows = stages(items, corpus, args)
    print(format_table(["stage (cumulative)", "frames", "wall s", "frames/s", "items/s", "time vs decode"], rows,
                       title=f"\nPipeline stages in one process (median of {args.runs})"))
    small = next(r for r in rows if r[0].startswith("+ detect on") and "full" not in r[0])
    full = next(r for r in rows if "full frame" in r[0])
    decode = rows[0][2]
    print(f"detection on the downscaled copy: {(full[2] - decode) / max(small[2] - decode, 1e-9):.1f}x faster "
          "than on the full frame (decode time subtracted)")

    rows = crop_rates(items, args)
    print(format_table(["per face crop", "crops", "wall s", "crops/s"], rows,
                       title=f"\nDescriptor / embedding alone (median of {args.runs})"))
    print(f"(load average now {', '.join(f'{x:.1f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    main()
