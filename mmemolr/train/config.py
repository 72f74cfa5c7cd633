"""Training configuration: validated from configs/<corpus>.yaml plus ``key=value`` overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mmemolr.config import ConfigError
from mmemolr.paths import REPO_ROOT


@dataclass
class ModelConfig:
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
    name: str = "rld"  # a registered target: onehot, rld, ls, lcm (mmemolr.targets)
    eta: float = 4.0  # rld: z = softmax(RLD + eta * y)
    sim_speaker: bool = True  # rld ablations: -Sim_speaker / -Sim_ctx
    sim_ctx: bool = True
    sim_temperature: float = 1.0  # rld: similarity scores are divided by this before their softmax
    # rld: weight of an extra loss -log RLD[gold] (not in the paper; 0 = the paper's loss).
    rld_anchor: float = 0.0
    smoothing: float = 0.1  # ls: epsilon
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


def default_config_path(corpus: str) -> Path | None:
    """configs/<corpus>.yaml, looked up in the working directory first, then in the repository."""
    name = Path(corpus).name
    for base in (Path("configs"), REPO_ROOT / "configs"):
        for stem in dict.fromkeys((name, name.lower())):
            if (base / f"{stem}.yaml").exists():
                return base / f"{stem}.yaml"
    return None


def check_train_config(config: TrainConfig) -> None:
    """Range checks the type system cannot express; each error names the key."""
    from mmemolr.targets import TARGETS, load_builtin_targets

    load_builtin_targets()
    problems = []
    if config.target.name not in TARGETS:
        problems.append(f"target.name={config.target.name!r} is not a known target ({', '.join(sorted(TARGETS))})")
    if config.model.hidden < 1:
        problems.append(f"model.hidden must be at least 1, got {config.model.hidden}")
    if config.model.input_proj is not None and config.model.input_proj < 1:
        problems.append(f"model.input_proj must be at least 1 or null, got {config.model.input_proj}")
    for key in ("dropout", "input_dropout"):
        if not 0.0 <= getattr(config.model, key) < 1.0:
            problems.append(f"model.{key} must be in [0, 1), got {getattr(config.model, key)}")
    if config.model.label_dim < 1:
        problems.append(f"model.label_dim must be at least 1, got {config.model.label_dim}")
    if config.target.name == "rld" and not (config.target.sim_speaker or config.target.sim_ctx):
        problems.append("target rld needs sim_speaker or sim_ctx (both are switched off)")
    if config.target.sim_temperature <= 0:
        problems.append(f"target.sim_temperature must be positive, got {config.target.sim_temperature}")
    if config.target.rld_anchor < 0:
        problems.append(f"target.rld_anchor must be >= 0, got {config.target.rld_anchor}")
    if not 0.0 <= config.target.smoothing < 1.0:
        problems.append(f"target.smoothing must be in [0, 1), got {config.target.smoothing}")
    if config.optim.lr <= 0:
        problems.append(f"optim.lr must be positive, got {config.optim.lr}")
    if config.optim.weight_decay < 0:
        problems.append(f"optim.weight_decay must be >= 0, got {config.optim.weight_decay}")
    for key in ("batch_dialogues", "max_epochs", "patience", "eval_batch_dialogues"):
        if getattr(config.optim, key) < 1:
            problems.append(f"optim.{key} must be at least 1, got {getattr(config.optim, key)}")
    if config.optim.grad_clip is not None and config.optim.grad_clip <= 0:
        problems.append(f"optim.grad_clip must be positive or null, got {config.optim.grad_clip}")
    if config.optim.ema_decay is not None and not 0.0 < config.optim.ema_decay < 1.0:
        problems.append(f"optim.ema_decay must be in (0, 1) or null, got {config.optim.ema_decay}")
    if problems:
        raise ConfigError("invalid training config: " + "; ".join(problems))
