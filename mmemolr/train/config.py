"""Training configuration: validated from configs/<corpus>.yaml plus ``key=value`` overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from mmemolr.config import ConfigError, check_ranges
from mmemolr.paths import REPO_ROOT


@dataclass
class ModelConfig:
    # The dialogue model label refinement plugs into (mmemolr.model.backbones): emolr (the Emotion
    # Predictor), dialoguernn, dialoguegcn, dag-erc. The keys below down to emotion_speaker are emolr's;
    # the other backbones read their own from backbone_options.<name> (docs/backbones.md).
    backbone: str = "emolr"
    # backbone name -> its options, e.g. {dialoguegcn: {window_past: 4}}; published sizes by default.
    backbone_options: dict = field(default_factory=dict)
    hidden: int = 150  # D_c = D_s = D_e
    input_proj: int | None = None  # project the fused features to this size first (None: no projection)
    dropout: float = 0.5  # on e_t before the classifier
    # On the fused features u_t (before the optional projection); 0.5 chosen on dev (docs/training.md).
    input_dropout: float = 0.5
    attention: bool = True  # attention over the context history (eq. 3); off: the last context state
    label_dim: int = 100  # size of the learned label embeddings of the refinement module
    skip: bool = False  # classifier reads e_t ⊕ u_t instead of e_t (not in the paper)
    # A second set of GRUs reads each dialogue backwards; states are both directions' (not in the paper).
    bidirectional: bool = False
    # Which speaker state GRU_E reads: previous = s_{p,t-1} (the paper's eq. 5), updated = s_{p,t}, after
    # this utterance's update (DialogueRNN's emotion GRU; not in the EmoLR paper).
    emotion_speaker: Literal["previous", "updated"] = "previous"
    # Append one 0/1 column per modality saying whether its vector is real (missing ones are zeros).
    availability_input: bool = True


@dataclass
class TargetConfig:
    # Keys of earlier versions and the value that meant "off": run folders that hold them at that value
    # still load; any other value is refused (mmemolr.config.from_dict).
    REMOVED_KEYS: ClassVar[dict[str, Any]] = {"sim_temperature": 1.0, "rld_anchor": 0.0}

    name: str = "rld"  # a registered target: onehot, rld, ls, lcm, votes (mmemolr.targets)
    # rld: how the refinement module's scores become RLD (mmemolr.targets.rld, docs/training.md):
    # paper (eqs. 6-11 as written), bounded (softmax per source), supervised (also trained on the gold label)
    refiner: Literal["paper", "bounded", "supervised"] = "supervised"
    # rld: how RLD and the one-hot y make z: eta = softmax(RLD + eta*y) (the paper), mix = (1-eps)*y + eps*m
    # with RLD deciding the non-gold shape of m at label smoothing's gold mass (eps = target.smoothing)
    combine: Literal["eta", "mix"] = "mix"
    eta: float = 4.0  # rld combine=eta: z = softmax(RLD + eta * y)
    sim_speaker: bool = True  # rld ablations: -Sim_speaker / -Sim_ctx
    sim_ctx: bool = True
    smoothing: float = 0.1  # ls and rld combine=mix: epsilon
    lcm_alpha: float = 4.0  # lcm: z = softmax(sim + alpha * y)
    # Where gradients of the KL loss flow through the target distribution z (rld, lcm):
    #   both:    into the target module and, through the states it reads, into the predictor (the paper)
    #   refiner: into the target module only (the states it reads are detached)
    #   detach:  nowhere: z is a fixed target and the target module keeps its initial weights
    gradient: Literal["both", "refiner", "detach"] = "both"


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 3e-4  # L2
    batch_dialogues: int = 16
    max_epochs: int = 60
    patience: int = 10  # early stopping on validation weighted F1
    grad_clip: float | None = None
    # Score, keep and test a moving average of the weights (mmemolr.train.ema); null: the weights as
    # trained (the paper). A decay per optimizer step, e.g. 0.998 (about 8 MELD epochs of 65 steps).
    ema_decay: float | None = None
    bucket: bool = True  # batch dialogues of similar length together (random among equal lengths)
    eval_batch_dialogues: int = 64


@dataclass
class TrainConfig:
    corpus: str = "meld"
    modalities: list[str] = field(default_factory=lambda: ["t"])
    features: dict = field(default_factory=dict)  # modality -> feature file, when a corpus has several
    seed: int = 0
    device: str = "auto"
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
    the values that run used (LEGACY_DEFAULTS), so it rebuilds the same model."""
    out = dict(data)
    for section, keys in LEGACY_DEFAULTS.items():
        if isinstance(out.get(section), dict):
            out[section] = {**keys, **out[section]}
    return out


def default_config_path(corpus: str) -> Path | None:
    """configs/<corpus>.yaml, looked up in the working directory first, then in the repository."""
    name = Path(corpus).name
    for base in (Path("configs"), REPO_ROOT / "configs"):
        for stem in dict.fromkeys((name, name.lower())):
            if (base / f"{stem}.yaml").exists():
                return base / f"{stem}.yaml"
    return None


# Allowed values of every numeric key (interval notation; null is allowed where the key is optional).
# NaN and infinities are refused for every key; a numeric key missing here is only checked for that
# (tests/test_config.py requires every numeric key of TrainConfig to be listed).
RANGES = {
    "seed": "[0, 4294967295]",  # 32 bits: what every seeding API accepts (numpy legacy, CUDA, ...)
    "model.hidden": "[1, inf)",
    "model.input_proj": "[1, inf)",
    "model.dropout": "[0, 1)",
    "model.input_dropout": "[0, 1)",
    "model.label_dim": "[1, inf)",
    "target.eta": "[0, inf)",
    "target.smoothing": "[0, 1)",
    "target.lcm_alpha": "[0, inf)",
    "optim.lr": "(0, inf)",
    "optim.weight_decay": "[0, inf)",
    "optim.batch_dialogues": "[1, inf)",
    "optim.max_epochs": "[1, inf)",
    "optim.patience": "[1, inf)",
    "optim.grad_clip": "(0, inf)",
    "optim.ema_decay": "(0, 1)",
    "optim.eval_batch_dialogues": "[1, inf)",
}


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
