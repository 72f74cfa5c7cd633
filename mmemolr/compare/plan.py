"""Sweep plans: a preset expands into runs (table row x column x seed) with stable folder names.

A run is described by ``key=value`` overrides of the base training config (the corpus's YAML plus the
user's own overrides), so every run goes through the same config loading as ``mmemolr train``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

PRESETS = ("table6", "ablation", "label-enhancement", "eta", "generalization")
# Rows of the generalization preset (the paper's Table 5: RLD on other backbones), the Emotion Predictor last.
BACKBONE_ORDER = ("dialoguernn", "dialoguegcn", "dag-erc", "emolr")
TARGET_LABELS = {"onehot": "one-hot", "rld": "RLD", "ls": "LS", "lcm": "LCM", "votes": "votes"}
# Row order of the paper's Table 6: single modalities, pairs, all three.
SUBSET_ORDER = ("t", "a", "v", "a+v", "t+a", "t+v", "t+a+v")
MODALITY_ORDER = ("t", "a", "v")


@dataclass(frozen=True)
class Variant:
    """One training target setting: ``key`` names run folders, ``label`` names table rows/columns."""

    key: str
    label: str
    overrides: tuple[str, ...]


def target_variant(name: str) -> Variant:
    return Variant(name, TARGET_LABELS.get(name, name), (f"target.name={name}",))


ABLATION = (
    Variant("rld", "full", ("target.name=rld",)),
    Variant("rld-no-sim-speaker", "−Sim_speaker", ("target.name=rld", "target.sim_speaker=false")),
    Variant("rld-no-sim-ctx", "−Sim_ctx", ("target.name=rld", "target.sim_ctx=false")),
    Variant("onehot", "−RLD", ("target.name=onehot",)),
)
# Every refiner form beside one-hot, label smoothing and LCM. ls and the mix-combined form share
# target.smoothing, so they put the same mass on the gold label: only the non-gold shape differs.
REFINER_FORMS = (
    Variant("rld-paper", "RLD paper", ("target.name=rld", "target.refiner=paper", "target.combine=eta")),
    Variant("rld-bounded", "RLD bounded", ("target.name=rld", "target.refiner=bounded", "target.combine=eta")),
    Variant("rld-supervised", "RLD supervised", ("target.name=rld", "target.refiner=supervised",
                                                 "target.combine=mix")),
)
LABEL_ENHANCEMENT = (target_variant("onehot"), target_variant("ls"), target_variant("lcm"), *REFINER_FORMS)
ETA_VALUES = (0, 1, 2, 3, 4, 5)
ETA_BASELINE = 4  # the paper's default
# Table 9 varies η of eq. 13, so these runs use combine=eta with the base config's refiner form.
ETA = tuple(Variant(f"rld-eta{k}", f"η={k}", ("target.name=rld", "target.combine=eta", f"target.eta={k}"))
            for k in ETA_VALUES)


@dataclass
class RunSpec:
    name: str  # folder name inside the sweep folder
    row: str
    column: str
    seed: int
    modalities: list[str]
    overrides: list[str]  # applied after the sweep's base overrides


@dataclass
class SweepPlan:
    preset: str
    corpus: str  # prepared corpus as given: a name under features_dir or a folder
    features_dir: str
    corpus_name: str
    corpus_fingerprint: str
    config_path: str | None  # base YAML (None: the TrainConfig defaults)
    base_overrides: list[str]
    features: dict[str, str]  # modality code -> chosen feature file (when a modality has several)
    modalities: list[str]
    seeds: list[int]
    rows: list[str]
    columns: list[str]
    compare: str  # "columns": each column vs the baseline column per row; "rows": each row vs the baseline row
    baseline: str
    runs: list[RunSpec] = field(default_factory=list)
    # Further rows (compare="rows") every row is also paired with, e.g. LS at equal smoothing.
    controls: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepPlan:
        data = dict(data)
        runs = [RunSpec(**r) for r in data.pop("runs", [])]
        return cls(**data, runs=runs)

    def run(self, name: str) -> RunSpec:
        for r in self.runs:
            if r.name == name:
                return r
        raise KeyError(name)


def parse_seeds(value: str | int | Sequence[int]) -> list[int]:
    """``5`` -> seeds 0..4; ``"0,3,7"`` -> those seeds."""
    if isinstance(value, int):
        count = value
    elif isinstance(value, str) and "," not in value.strip():
        try:
            count = int(value)
        except ValueError:
            raise ValueError(f"--seeds {value!r}: give a count (5) or a list of seeds (0,3,7)") from None
    else:
        items = value.split(",") if isinstance(value, str) else list(value)
        try:
            seeds = [int(str(s).strip()) for s in items if str(s).strip()]
        except ValueError:
            raise ValueError(f"--seeds {value!r}: give a count (5) or a list of seeds (0,3,7)") from None
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"--seeds {value!r}: the seeds must be distinct and at least one")
        return seeds
    if count < 1:
        raise ValueError(f"--seeds {value!r}: at least one seed is needed")
    return list(range(count))


def modality_subsets(modalities: Sequence[str]) -> list[list[str]]:
    """Every non-empty subset of ``modalities`` (codes t/a/v), in the row order of Table 6."""
    chosen = set(modalities)
    return [key.split("+") for key in SUBSET_ORDER if set(key.split("+")) <= chosen]


def subset_key(codes: Sequence[str]) -> str:
    return "+".join(c for c in MODALITY_ORDER if c in codes)


def subset_label(codes: Sequence[str]) -> str:
    return subset_key(codes).upper()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", text)


def _runs_for(rows: list[tuple[str, list[str], Variant]], columns: list[str], seeds: list[int],
              column_of: dict[str, str]) -> list[RunSpec]:
    """Seed-major order, so an interrupted sweep has whole tables for its first seeds."""
    out = []
    for seed in seeds:
        for row_label, codes, variant in rows:
            name = _safe(f"{subset_key(codes)}_{variant.key}_seed{seed}")
            overrides = [f"modalities=[{','.join(codes)}]", *variant.overrides, f"seed={seed}"]
            out.append(RunSpec(name, row_label, column_of.get(variant.key, columns[0]), seed, list(codes), overrides))
    return out


def build_plan(
    preset: str,
    *,
    corpus: str,
    features_dir: str,
    corpus_name: str,
    corpus_fingerprint: str,
    modalities: Sequence[str],
    seeds: Sequence[int],
    targets: Sequence[str] | None = None,
    config_path: str | None = None,
    base_overrides: Sequence[str] = (),
    features: dict[str, str] | None = None,
    backbones: Sequence[str] | None = None,
    has_votes: bool = False,
) -> SweepPlan:
    """Expand ``preset`` over the given modalities (codes) and seeds.

    table6: every modality subset x ``targets`` (default one-hot and RLD), RLD vs one-hot per row.
    generalization: ``backbones`` (default BACKBONE_ORDER) x ``targets`` (default one-hot and RLD) on all
    ``modalities`` together, RLD vs one-hot per backbone (Table 5).
    ablation / label-enhancement / eta: the variants of Tables 2, 7 and 9 on all ``modalities`` together,
    each row against the full model / one-hot / eta=4. On a corpus with annotator votes (``has_votes``)
    label-enhancement also trains on the votes themselves (the ``votes`` row: the human reference).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    codes = [c for c in MODALITY_ORDER if c in modalities]
    if not codes:
        raise ValueError("no modality to compare; pass --modalities (t, a, v) with feature files present")
    seeds = list(seeds)
    common = dict(
        preset=preset, corpus=corpus, features_dir=features_dir, corpus_name=corpus_name,
        corpus_fingerprint=corpus_fingerprint, config_path=config_path, base_overrides=list(base_overrides),
        features=dict(features or {}), modalities=codes, seeds=seeds,
    )
    if backbones and preset != "generalization":
        raise ValueError(f"--backbones applies to --preset generalization, not {preset}")
    if preset == "table6":
        names = list(dict.fromkeys(targets or ("onehot", "rld")))
        variants = [target_variant(t) for t in names]
        subsets = modality_subsets(codes)
        columns = [v.label for v in variants]
        baseline = TARGET_LABELS["onehot"] if "onehot" in names else columns[0]
        rows = [(subset_label(s), s, v) for s in subsets for v in variants]
        runs = _runs_for(rows, columns, seeds, {v.key: v.label for v in variants})
        return SweepPlan(**common, rows=[subset_label(s) for s in subsets], columns=columns, compare="columns",
                         baseline=baseline, runs=runs)
    if preset == "generalization":
        return _generalization(common, codes, seeds, list(dict.fromkeys(backbones or BACKBONE_ORDER)),
                               list(dict.fromkeys(targets or ("onehot", "rld"))))
    if targets:
        raise ValueError(f"--targets applies to --preset table6 and generalization; the {preset} preset fixes its own targets")
    variants, baseline = {
        "ablation": (ABLATION, "full"),
        "label-enhancement": (LABEL_ENHANCEMENT + ((target_variant("votes"),) if has_votes else ()),
                              TARGET_LABELS["onehot"]),
        "eta": (ETA, f"η={ETA_BASELINE}"),
    }[preset]
    column = subset_label(codes)
    rows = [(v.label, codes, v) for v in variants]
    runs = _runs_for(rows, [column], seeds, {})
    # RLD supervised (combine=mix) and LS share target.smoothing: the LS row is the equal-smoothing control.
    controls = [TARGET_LABELS["ls"]] if preset == "label-enhancement" else []
    return SweepPlan(**common, rows=[v.label for v in variants], columns=[column], compare="rows",
                     baseline=baseline, runs=runs, controls=controls)


def _generalization(common: dict[str, Any], codes: list[str], seeds: list[int], backbones: list[str],
                    targets: list[str]) -> SweepPlan:
    """Rows: backbones; columns: targets; each column against one-hot per row."""
    from mmemolr.model.backbones import backbone_class

    for name in backbones:
        backbone_class(name)  # an unknown name fails here, naming the known ones
    variants = [target_variant(t) for t in targets]
    columns = [v.label for v in variants]
    runs = []
    for seed in seeds:  # seed-major, as _runs_for
        for backbone in backbones:
            for v in variants:
                overrides = [f"modalities=[{','.join(codes)}]", f"model.backbone={backbone}", *v.overrides,
                             f"seed={seed}"]
                runs.append(RunSpec(_safe(f"{backbone}_{v.key}_seed{seed}"), backbone, v.label, seed, list(codes),
                                    overrides))
    baseline = TARGET_LABELS["onehot"] if "onehot" in targets else columns[0]
    return SweepPlan(**common, rows=backbones, columns=columns, compare="columns", baseline=baseline, runs=runs)
