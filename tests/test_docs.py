"""The README's paths are the ones scripts/quickstart.sh writes."""

from __future__ import annotations

import re
import shlex

from mmemolr.compare.plan import build_plan
from mmemolr.paths import REPO_ROOT


def _quickstart_commands() -> list[list[str]]:
    text = (REPO_ROOT / "scripts" / "quickstart.sh").read_text().replace("\\\n", " ")  # continued lines joined
    return [shlex.split(line)[1:] for line in text.splitlines() if line.startswith("$MMEMOLR ")]


def test_readme_uses_the_sweep_folder_of_the_quickstart():
    commands = _quickstart_commands()
    compare = next(c for c in commands if c[0] == "compare")
    sweep = compare[compare.index("--out") + 1]
    preset = compare[compare.index("--preset") + 1]
    assert ["report", sweep] in commands  # the quickstart reports the folder it wrote
    readme = (REPO_ROOT / "README.md").read_text()
    assert f"mmemolr report {sweep}\n" in readme
    # the recording-to-emotions example predicts with a run of that sweep
    runs = re.findall(r"mmemolr predict (\S+) ", readme)
    in_sweep = [r for r in runs if r.startswith(sweep + "/")]
    assert in_sweep, f"no README predict example uses a run of {sweep}"
    plan = build_plan(preset, corpus="meld", features_dir="features", corpus_name="meld", corpus_fingerprint="f",
                      modalities=["t"], seeds=[0])
    assert {r.split("/")[-1] for r in in_sweep} <= {spec.name for spec in plan.runs}


def test_readme_opens_the_report_and_tensorboard_of_the_quickstart_sweep():
    compare = next(c for c in _quickstart_commands() if c[0] == "compare")
    sweep, logs = compare[compare.index("--out") + 1], compare[compare.index("--tensorboard") + 1]
    readme = (REPO_ROOT / "README.md").read_text()
    assert f"{sweep}/report.html" in readme and f"tensorboard --logdir {logs}" in readme
    shots = re.findall(r"!\[[^]]*\]\((docs/[^)]+\.png)\)", readme)
    assert shots, "the README shows a screenshot of report.html"
    for shot in shots:
        assert (REPO_ROOT / shot).stat().st_size < 300_000, shot
