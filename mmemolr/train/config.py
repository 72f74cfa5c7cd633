"""Training configuration: validated from configs/<corpus>.yaml plus ``key=value`` overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from mmemolr.config import ConfigError, Removed, check_ranges, field_ranges, option
from mmemolr.paths import REPO_ROOT


@dataclass
class ModelConfig:
    """The dialogue model. The keys from ``hidden`` to ``emotion_speaker`` are the Emotion Predictor's
    (``emolr``); the other backbones read theirs from ``backbone_options.<name>`` (docs/backbones.md)."""

    REMOVED_KEYS: ClassVar[dict[str, Removed]] = {
        "input_proj": Removed(None, "the fused features feed the GRUs directly",
                              "a projection to 128: MELD dev W-F1 −0.91 ± 0.66, p 0.04, 5 seeds"),
        "skip": Removed(False, "the classifier reads e_t alone, as in the paper",
                        "the classifier reading e_t ⊕ u_t: MELD dev W-F1 −1.16 ± 0.42, p 0.004, 5 seeds "
                        "(−1.40 in a first 3-seed round)"),
        "bidirectional": Removed(False, "the Emotion Predictor reads the past, as in the paper (the dialoguernn "
                                 "backbone reads both directions)",
                                 "a backward set of GRUs: MELD dev W-F1 −0.08 ± 0.50, p 0.75, 5 seeds, at "
                                 "2.4 times the seconds per epoch"),
        "attention": Removed(True, "the attention over the context history (eq. 3) is always on",
                             "the last context state instead: MELD dev W-F1 +0.07 ± 0.25, p 0.59, 5 seeds"),
        "availability_input": Removed(True, "one 0/1 availability column per modality is always appended",
                                      "never switched off in a config, preset or measurement"),
    }

    backbone: str = option("emolr", doc="the dialogue model label refinement plugs into: `emolr` (the Emotion "
                           "Predictor), `dialoguernn`, `dialoguegcn`, `dag-erc` (docs/backbones.md)",
                           why="the paper's Table 5 (`--preset generalization`): RLD − one-hot, MELD test "
                           "W-F1, +0.96 ± 0.50 on dialoguernn (p 0.013), +1.02 ± 0.57 on emolr (p 0.017)")
    backbone_options: dict = option(doc="backbone name -> its options (the backbone options table, "
                                    "docs/backbones.md), e.g. `{dialoguegcn: {n_speakers: 2}}`",
                                    why="the published sizes by default; the corpus configs set what the "
                                    "references (IEMOCAP) or dev (input dropout) chose",
                                    factory=dict)
    hidden: int = option(150, range="[1, inf)", doc="D = D_c = D_s = D_e: the width of the Emotion "
                         "Predictor's states",
                         why="the paper's size; 100 and 300 were no better on MELD dev (−0.39 ± 0.68 and "
                         "−0.44); the tests build 6- to 32-wide models with it to train in seconds")
    dropout: float = option(0.5, range="[0, 1)", doc="dropout on e_t before the classifier",
                            why="the paper's 0.5; 0.3 was no better on MELD dev (+0.21 ± 0.65, p 0.51); the "
                            "tests set 0 to compare runs exactly")
    input_dropout: float = option(0.5, range="[0, 1)", doc="dropout on the fused features u_t",
                                  why="chosen on dev: 0.5 against 0, MELD 55.7 vs 53.1 (seed 0); "
                                  "configs/meld.yaml 0.7 (with lr 2e-4, L2 1e-3: +1.14 ± 0.55, p 0.009)")
    label_dim: int = option(100, range="[1, inf)", doc="size of the label embeddings of the refinement "
                            "module (`rld`) and of `lcm`",
                            why="the size of the target module, as `hidden` is the predictor's: the tests "
                            "build 4- to 16-wide modules with it")
    emotion_speaker: Literal["previous", "updated"] = option(
        "previous", doc="the speaker state GRU_E reads: `previous` s_{p,t-1} (the paper's eq. 5) or `updated` "
        "s_{p,t} (DialogueRNN's emotion GRU)",
        why="configs/meld.yaml: `updated`, chosen on dev (+0.72 ± 0.27 one-hot, p 0.004; +0.40 ± 0.26 rld, "
        "p 0.03); EmoryNLP keeps `previous` (`updated` −0.55 ± 0.69)")


@dataclass
class TargetConfig:
    """The training target and its form (mmemolr.targets, docs/training.md: Targets)."""

    REMOVED_KEYS: ClassVar[dict[str, Removed]] = {
        "sim_temperature": Removed(1.0, "RLD is the refiner's scores as they are",
                                   "a temperature of 4 or 12: still ~94% of the non-gold mass on one label, "
                                   "MELD dev W-F1 54.86 / 54.81 vs 54.94"),
        "rld_anchor": Removed(0.0, "`target.refiner: supervised` trains the refiner on the gold label",
                              "an anchor loss −log RLD[gold]: z became even smoothing, dev level with one-hot"),
        "gradient": Removed("both", "the KL gradient flows into the target module and the predictor, as in "
                            "the paper",
                            "detaching the states: MELD dev W-F1 54.47 vs 54.94, the target still on one "
                            "label for 85% of the utterances; a constant z was never measured and crashed "
                            "grouped runs"),
        "lcm_alpha": Removed(4.0, "lcm keeps α = 4, the value of every lcm run",
                             "never changed in a config, preset or measurement"),
    }

    name: str = option("rld", doc="a registered target: `onehot`, `rld`, `ls`, `lcm`, `votes` (the annotators' "
                       "vote shares; corpora with votes) (mmemolr.targets)",
                       why="the paper's comparison (`--preset label-enhancement`): rld (supervised, mix) "
                       "+1.02 ± 0.58 MELD test W-F1 over one-hot (p 0.017), +0.87 ± 0.27 over ls (p 0.002); "
                       "`votes` is the human reference of the agreement-with-people columns")
    refiner: Literal["paper", "bounded", "supervised"] = option(
        "supervised", doc="rld: how RLD is made: `paper` (eqs. 6-11 as written), `bounded` (a softmax per "
        "source), `supervised` (the scores also trained on the gold label; RLD = their softmax)",
        why="`supervised` is the one form that recovers known confusions (synthetic partner share 0.57 vs "
        "0.15 `bounded`) and the best on dev (MELD 57.55 vs 55.87 `bounded`, 31.19 `paper`); `paper` "
        "reproduces the paper's equations, `bounded` the form shipped first")
    combine: Literal["eta", "mix"] = option(
        "mix", doc="rld: how RLD and the one-hot y make z: `eta` softmax(RLD + η·y) (the paper's eq. 13), `mix` "
        "(1−ε)·y + ε·m with RLD deciding the non-gold shape of m (ε = `target.smoothing`)",
        why="`mix` puts LS's gold mass on the gold label, so `ls` is its exact control (+1.71 ± 0.62 MELD dev "
        "over it, p 0.004); `eta` reproduces eq. 13 and the paper's Table 9")
    eta: float = option(4.0, range="[0, inf)", doc="rld with `combine: eta`: η",
                        why="the paper's Table 9 (`--preset eta`, η = 0 … 5; no η differs from 4 on dev)")
    sim_speaker: bool = option(True, doc="rld: score the speaker state (Sim_speaker, eq. 7)",
                               why="the paper's ablation −Sim_speaker (`--preset ablation`, `--no-sim-speaker`): "
                               "MELD dev −0.07, EmoryNLP −0.29")
    sim_ctx: bool = option(True, doc="rld: score the context state (Sim_ctx, eq. 8)",
                           why="the paper's ablation −Sim_ctx (`--preset ablation`, `--no-sim-ctx`): MELD dev "
                           "−0.53, EmoryNLP +0.48")
    smoothing: float = option(0.1, range="[0, 1)", doc="ε of `ls` and of rld with `combine: mix`",
                              why="`ls` is the paper's label-smoothing baseline; one ε for both makes it the "
                              "equal-gold-mass control of rld (`--preset label-enhancement`)")


@dataclass
class OptimConfig:
    """Adam, batches and the epoch budget (docs/training.md: Protocol, Epoch budget)."""

    REMOVED_KEYS: ClassVar[dict[str, Removed]] = {
        "grad_clip": Removed(None, "no gradient clipping, as in the paper",
                             "null in every config; never measured"),
        "ema_decay": Removed(None, "the weights as trained are scored, kept and tested, as in the paper",
                             "a moving average of the weights: MELD dev W-F1 54.75 ± 0.57 (decay 0.998) and "
                             "54.66 ± 0.55 (0.99) vs 54.79 ± 0.57, 5 seeds; EmoryNLP DialogueGCN 36.86 vs 36.82"),
        "bucket": Removed(True, "batches always group dialogues of similar length",
                          "never switched off in a config, preset or measurement"),
        "eval_batch_dialogues": Removed(64, "evaluation reads 64 dialogues a batch",
                                        "never changed; it changes no result"),
    }

    lr: float = option(1e-4, range="(0, inf)", doc="Adam's learning rate",
                       why="chosen on dev: EmoryNLP 5e-4 (38.75 ± 0.37 vs 37.31 ± 0.29 at the paper's 1e-4), "
                       "MELD 2e-4 (with input dropout 0.7 and L2 1e-3)")
    weight_decay: float = option(3e-4, range="[0, inf)", doc="L2 weight decay (Adam's)",
                                 why="chosen on dev: MELD 1e-3 (+1.14 ± 0.55 with input dropout 0.7, lr 2e-4; "
                                 "p 0.009), EmoryNLP 1e-5")
    batch_dialogues: int = option(16, range="[1, inf)", doc="dialogues a batch",
                                  why="the paper's 16; 64 makes a GPU epoch 2.9 times faster (MELD on an H200: "
                                  "0.48 vs 1.39 s); 8 was no better on MELD dev (54.88 ± 0.71 vs 54.79)")
    max_epochs: int | None = option(None, range="[1, inf)", doc="epoch cap; null: counted in optimiser steps, "
                                    "10,000 steps and at least 3 × patience (mmemolr.train.budget)",
                                    why="configs/iemocap.yaml 500 (3,500 steps): at 60 epochs 16 of 20 IEMOCAP runs "
                                    "ended at the cap; null: synthetic MELD- and IEMOCAP-shaped corpora end by "
                                    "early stopping at 56-61 of 154 and 77-145 of 1,429 epochs (Epoch budget)")
    patience: int | None = option(None, range="[1, inf)", doc="epochs without a better dev W-F1 before training "
                                  "stops; null: 350 optimiser steps and at least 10 epochs",
                                  why="configs/iemocap.yaml 50 (350 steps; its 12-dialogue dev is noisy), MELD and "
                                  "EmoryNLP 10; the null rule gives each of them its shipped value")


@dataclass
class TrainConfig:
    """What ``mmemolr train`` reads (configs/<corpus>.yaml, then ``key=value`` overrides)."""

    corpus: str = option("meld", doc="a prepared corpus: a name under `--features-dir` or a folder with "
                         "corpus.json; `configs/<corpus>.yaml` is read when it exists",
                         why="what a run trains on")
    modalities: list[str] = option(doc="subset of `t`, `a`, `v`; `text`, `audio`, `visual` are accepted and stored "
                                   "as the codes", why="what a run trains on (the paper's Table 6: every subset)",
                                   factory=lambda: ["t"])
    features: dict = option(doc="modality -> feature file, when a corpus holds several of a modality",
                            why="what a run trains on", factory=dict)
    seed: int = option(0, range="[0, 4294967295]", doc="initial weights, dropout masks and batch order (32 bits: "
                       "what every seeding API accepts)", why="runs are repeated over seeds (mean ± std)")
    device: str = option("auto", doc="`auto` (CUDA when present), `cpu`, `cuda[:N]`", why="where a run trains")
    model: ModelConfig = field(default_factory=ModelConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        from mmemolr.fuse.sources import modality_code

        # t/a/v and text/audio/visual name the same modalities on purpose; runs record the codes, so
        # `--modalities text` and `--modalities t` are the same run.
        self.modalities = [modality_code(m) for m in self.modalities]


# What a run folder written before a key existed was trained with, where that differs from today's default.
LEGACY_DEFAULTS: dict[str, dict[str, Any]] = {"target": {"refiner": "bounded", "combine": "eta"},
                                              "model": {"backbone": "emolr"}}


def upgrade_stored_config(data: dict[str, Any]) -> dict[str, Any]:
    """A config dict stored in a run folder (results.json, config.yaml), with the keys it predates set to
    the values that run used (LEGACY_DEFAULTS) and removed backbone options at their "off" values dropped
    (as from_dict drops the removed keys of the sections), so it rebuilds and compares as the same run."""
    from mmemolr.model.backbones import drop_removed_options

    out = dict(data)
    for section, keys in LEGACY_DEFAULTS.items():
        if isinstance(out.get(section), dict):
            out[section] = {**keys, **out[section]}
    model = out.get("model")
    if isinstance(model, dict) and isinstance(model.get("backbone_options"), dict):
        out["model"] = {**model, "backbone_options": drop_removed_options(model["backbone_options"])}
    return out


def default_config_path(corpus: str) -> Path | None:
    """configs/<corpus>.yaml, looked up in the working directory first, then in the repository."""
    name = Path(corpus).name
    for base in (Path("configs"), REPO_ROOT / "configs"):
        for stem in dict.fromkeys((name, name.lower())):
            if (base / f"{stem}.yaml").exists():
                return base / f"{stem}.yaml"
    return None


# Allowed values of every numeric key (interval notation, from the fields' ``range``; null is allowed where
# the key is optional). NaN and infinities are refused for every key; tests/test_config.py requires every
# numeric key of TrainConfig to have one.
RANGES = field_ranges(TrainConfig)


def check_train_config(config: TrainConfig) -> None:
    """Checks the type system cannot express (ranges, known target, modalities); each error names the key."""
    from mmemolr.fuse import normalise_modalities
    from mmemolr.model.backbones import check_backbone_config
    from mmemolr.targets import TARGETS, load_builtin_targets

    load_builtin_targets()
    problems = check_ranges(config, RANGES)
    problems += check_backbone_config(config.model)
    if config.target.name not in TARGETS:
        problems.append(f"target.name={config.target.name!r} is not a known target ({', '.join(sorted(TARGETS))})")
    if config.target.name == "rld" and not (config.target.sim_speaker or config.target.sim_ctx):
        problems.append("target rld needs sim_speaker or sim_ctx (both are switched off)")
    if config.target.name == "rld" and config.target.combine == "mix" and config.target.refiner == "paper":
        problems.append("target.combine=mix needs RLD to be a distribution: use target.refiner=bounded or "
                        "supervised (the paper's raw scores are not one)")
    try:
        normalise_modalities(config.modalities)
    except ValueError as err:
        problems.append(f"modalities: {err}")
    if problems:
        raise ConfigError("invalid training config: " + "; ".join(problems))
