"""A training run's settings: optimisation, model size, binning and task mix, as one file."""

from dataclasses import dataclass, field

from bayesfm.common.jsonio import from_json, load_json, to_json
from bayesfm.model.batching import TaskMix
from bayesfm.tokens.grid import XPBinning
from bayesfm.tokens.labels import NOMINAL_AK_ERROR

__all__ = ["TrainConfig", "RunConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (see configs/train/1_default.json)."""

    batch_size: int = 256
    learning_rate: float = 1e-3
    warmup_steps: int = 500
    max_steps: int = 20000
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    eval_every: int = 250
    patience: int = 8
    val_stars: int = 2000
    checkpoint_every_s: float = 120.0
    loss_per_star: bool = False  # average each star's targets first, so every task counts
    # by its share of stars rather than by how many tokens it asks for
    full_observables: float = 0.0  # share of observables -> labels stars given every observable
    max_targets: int = 24  # targets per star (a random subset beyond this)
    nll_beta: float = 0.0  # train and pick the best weights on the beta-NLL (gaussian_nll)
    # Latent extinction: every this many steps each train and validation star's a_k is refitted by the
    # current emulator with a N(ak_targ, extinction_prior_sd) prior (0: ak_targ as given),
    # and with extinction_anchor, mapped per stellar class onto ak_targ's scale.
    latent_extinction_every: int = 0
    extinction_prior_sd: float = NOMINAL_AK_ERROR
    extinction_anchor: bool = False
    # Stars without fe_h and alpha_m (hot stars) take a donor's in the emulator task and the
    # extinction refits (bayesfm.model.abundance_donors)
    stand_in_abundances: bool = False


@dataclass(frozen=True)
class RunConfig:
    """A complete, reproducible training run."""

    seed: int = 0
    model: dict = field(default_factory=dict)  # TransformerConfig fields except n_tokens
    training: TrainConfig = TrainConfig()
    binning: XPBinning = XPBinning()
    task_mix: TaskMix = TaskMix()
    init_from: str | None = None  # warm start: a saved model path, or "default" (the shipped one)

    @classmethod
    def from_file(cls, path) -> "RunConfig":
        """A run from a JSON file holding the fields that differ from the defaults."""
        return from_json(cls, load_json(path, "a run configuration"), f"run configuration {path}")

    def to_dict(self) -> dict:
        return to_json(self)
