"""Training configuration: validated from configs/<corpus>.yaml plus ``key=value`` overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ModelConfig:
    hidden: int = 150  # D_c = D_s = D_e
    input_proj: int | None = None  # project the fused features to this size first (None: no projection)
    dropout: float = 0.5
    attention: bool = True  # attention over the context history (eq. 3)
    label_dim: int = 100  # size of the learned label embeddings of the refinement module


@dataclass
class TargetConfig:
    name: Literal["onehot", "rld", "ls", "lcm"] = "rld"
    eta: float = 4.0  # rld: z = softmax(RLD + eta * y)
    sim_speaker: bool = True  # rld ablations: -Sim_speaker / -Sim_ctx
    sim_ctx: bool = True
    smoothing: float = 0.1  # ls: epsilon
    lcm_alpha: float = 4.0  # lcm: z = softmax(sim + alpha * y)
    # Where gradients flow: "both" trains the refinement module through the KL loss jointly with the
    # predictor (the paper); "detach" treats the refined distribution as a fixed target.
    gradient: Literal["both", "detach"] = "both"


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 3e-4  # L2
    batch_dialogues: int = 16
    max_epochs: int = 60
    patience: int = 10  # early stopping on validation weighted F1
    grad_clip: float | None = None


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
