"""Self-supervised training of the foundation model: pure step, resumable loop.

``train_step(params, opt_state, batch)`` is a pure jitted function; ``train`` wires it to
the data, checkpoints (every few minutes, atomic, exact resume: the batch of step s is
drawn from a generator seeded with (seed, s)), validation-split early stopping, a JSONL
metrics log and a progress bar.
"""

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from bayesfm.common.errors import DataError
from bayesfm.common.pytree_io import load_leaves, save_leaves
from bayesfm.model.batching import Batch, EmulatorQuery, TaskMix, sample_batch
from bayesfm.model.emulator import make_emulator
from bayesfm.model.extinction_fit import clean_extinction, save_extinction
from bayesfm.model.foundation_model import FoundationModel, build_model
from bayesfm.model.transformer import TransformerConfig
from bayesfm.tokens.grid import XPBinning
from bayesfm.tokens.labels import LABEL_INPUTS, NOMINAL_AK_ERROR
from bayesfm.tokens.specs import default_token_specs
from bayesfm.tokens.split import split_mask
from bayesfm.tokens.star_tokens import StarTokens
from bayesfm.tokens.vocabulary import Vocabulary, fit_vocabulary

__all__ = [
    "TrainConfig",
    "RunConfig",
    "NormalisedStars",
    "normalise_stars",
    "gaussian_nll",
    "make_train_step",
    "train",
]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (see configs/default.json)."""

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
    # Latent extinction: every this many steps each train and validation star's a_k is refitted by the
    # current emulator with a N(ak_targ, extinction_prior_sd) prior (0: ak_targ as given).
    latent_extinction_every: int = 0
    extinction_prior_sd: float = NOMINAL_AK_ERROR


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
        data = json.loads(Path(path).read_text())
        return cls(
            seed=data.get("seed", 0),
            model=data.get("model", {}),
            training=TrainConfig(**data.get("training", {})),
            binning=XPBinning(**data.get("binning", {})),
            task_mix=TaskMix(**data.get("task_mix", {})),
            init_from=data.get("init_from"),
        )

    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
            "model": self.model,
            "training": asdict(self.training),
            "binning": asdict(self.binning),
            "task_mix": self.task_mix._asdict(),
            "init_from": self.init_from,
        }


@dataclass(frozen=True)
class NormalisedStars:
    """Normalised token arrays of one split; absent tokens hold 0 value / 1 error."""

    values: np.ndarray  # [N, T] float32
    errors: np.ndarray  # [N, T] float32
    present: np.ndarray  # [N, T] bool


def normalise_stars(tokens: StarTokens, vocabulary: Vocabulary) -> NormalisedStars:
    index = vocabulary.index(tokens.names)
    z, ze = vocabulary.normalise(tokens.values, tokens.errors, index)
    present = tokens.present
    return NormalisedStars(
        values=np.where(present, z, 0.0).astype(np.float32),
        errors=np.where(present, ze, 1.0).astype(np.float32),
        present=present,
    )


def gaussian_nll(mean, log_variance, value, error, mask, per_star=False):
    """Gaussian NLL, variance = exp(log_variance) + error^2, over the masked entries [B, K]:
    their mean, or with ``per_star`` the mean over stars of each star's mean."""
    variance = jnp.exp(log_variance) + error**2
    nll = jnp.where(
        mask, 0.5 * (jnp.log(2 * jnp.pi * variance) + (value - mean) ** 2 / variance), 0.0
    )
    if not per_star:
        return jnp.sum(nll) / jnp.maximum(jnp.sum(mask), 1)
    count = jnp.sum(mask, axis=1)
    star_mean = jnp.sum(nll, axis=1) / jnp.maximum(count, 1)
    return jnp.sum(star_mean) / jnp.maximum(jnp.sum(count > 0), 1)


def _batch_loss(graphdef, params, batch: Batch, per_star=False):
    model = nnx.merge(graphdef, params)
    mean, log_variance = model(
        batch.context_index,
        batch.context_value,
        batch.context_error,
        batch.context_mask,
        batch.target_index,
    )
    return gaussian_nll(
        mean, log_variance, batch.target_value, batch.target_error, batch.target_mask, per_star
    )


# Splits whose a_k the latent extinction refits: train (the labels learned from) and
# validation (so that the NLL that picks the best weights sees the same cleaned labels).
_FITTED_SPLITS = ("train", "validation")


def make_optimizer(config: TrainConfig):
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=config.warmup_steps,
        decay_steps=config.max_steps,
        end_value=config.learning_rate * 0.02,
    )
    optimizer = optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.adamw(schedule, weight_decay=config.weight_decay),
    )
    return optimizer, schedule


def make_train_step(graphdef, optimizer, per_star=False):
    """A pure jitted ``(params, opt_state, batch) -> (params, opt_state, loss)``."""

    @jax.jit
    def train_step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(lambda p: _batch_loss(graphdef, p, batch, per_star))(
            params
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return train_step


def make_eval_loss(graphdef, per_star=False):
    return jax.jit(lambda params, batch: _batch_loss(graphdef, params, batch, per_star))


def _token_groups(vocabulary: Vocabulary):
    groups = np.array([s.group for s in vocabulary.specs])
    labels = np.isin(groups, ["label", "extinction"])
    observables = np.isin(groups, ["xp_bp", "xp_rp", "colour"])
    return labels, observables


def _draw(stars: NormalisedStars, rows, rng, vocabulary, run: RunConfig, query: EmulatorQuery):
    labels, observables = _token_groups(vocabulary)
    return sample_batch(
        rng,
        stars.values[rows],
        stars.errors[rows],
        stars.present[rows],
        labels,
        observables,
        run.task_mix,
        max_targets=run.training.max_targets,
        full_observables=run.training.full_observables,
        emulator_query=query,
    )


def _validation_batches(tokens: StarTokens, vocabulary, run: RunConfig, query) -> list:
    """The fixed batches of validation stars the NLL is evaluated on."""
    stars = normalise_stars(tokens, vocabulary)
    rng = np.random.default_rng([run.seed, 2**31 - 1])
    rows = rng.permutation(len(tokens))[: run.training.val_stars]
    size = run.training.batch_size
    return [
        _draw(stars, rows[i : i + size], rng, vocabulary, run, query)
        for i in range(0, len(rows), size)
    ]


def emulator_context_errors(stars: NormalisedStars, vocabulary: Vocabulary) -> dict:
    """The normalised error the emulator task gives each latent input: its median over the
    training stars, a context the error embedding has seen many times."""
    index = vocabulary.index(LABEL_INPUTS)
    return {
        name: float(np.median(stars.errors[stars.present[:, i], i]))
        for name, i in zip(LABEL_INPUTS, index, strict=True)
    }


def _warm_start_params(run: RunConfig, model_config: TransformerConfig, vocabulary, params):
    """``params`` with the weights of the model named by ``run.init_from``, checked against
    this run. A start without the pooled summary may grow one: it begins from ``params``."""
    start = FoundationModel.load(None if run.init_from == "default" else run.init_from)
    grown = start.config
    if grown.summary_width == 0:
        grown = replace(grown, summary_width=model_config.summary_width)
    if grown != model_config:
        raise DataError(
            f"init_from model {run.init_from!r} has config {start.config}, the run needs "
            f"{model_config}; make the config's 'model' section match it"
        )
    if start.vocabulary.to_dict() != vocabulary.to_dict():
        raise DataError(
            f"init_from model {run.init_from!r} was trained with another vocabulary or "
            "normalisation (different data or binning); warm starts need the same"
        )
    merged = _merged(nnx.to_pure_dict(params), nnx.to_pure_dict(start.params))
    nnx.replace_by_pure_dict(params, merged)
    return params


def _merged(base: dict, update: dict) -> dict:
    """Nested dict ``base`` with every leaf that ``update`` has replaced by update's."""
    return {
        key: _merged(value, update[key])
        if isinstance(value, dict) and key in update
        else update.get(key, value)
        for key, value in base.items()
    }


def train(run: RunConfig, tokens: StarTokens, out_dir, progress: bool = True) -> FoundationModel:
    """Train (or resume) in ``out_dir``; returns the best model on the validation split.

    Args:
        run: The run configuration.
        tokens: All stars (split by source id here; test stars are never used).
        out_dir: Holds checkpoint.npz, best.safetensors/.json, metrics.jsonl, config.json.
        progress: Show a progress bar.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(run.to_dict(), indent=1))
    cfg = run.training
    splits = {name: tokens.take(split_mask(tokens.source_id, name)) for name in _FITTED_SPLITS}
    ak_targ = {name: split.column("a_k")[0] for name, split in splits.items()}
    vocabulary = fit_vocabulary(splits["train"], default_token_specs(run.binning), run.binning)
    context_errors = emulator_context_errors(
        normalise_stars(splits["train"], vocabulary), vocabulary
    )
    query = EmulatorQuery.build(vocabulary, context_errors)
    model_config = TransformerConfig(n_tokens=len(vocabulary), **run.model)
    graphdef, params = build_model(model_config, seed=run.seed)
    if run.init_from is not None:
        params = _warm_start_params(run, model_config, vocabulary, params)
    optimizer, schedule = make_optimizer(cfg)
    opt_state = optimizer.init(params)
    train_step = make_train_step(graphdef, optimizer, cfg.loss_per_star)
    eval_loss = make_eval_loss(graphdef, cfg.loss_per_star)
    info = {
        "data_hash": splits["train"].content_hash(),
        "run_config": run.to_dict(),
        "emulator_context_errors": context_errors,
    }

    def current_model(p):
        return FoundationModel(model_config, vocabulary, graphdef, p, info)

    step, best_val, bad_evals, cleaned_at = 0, np.inf, 0, -1
    checkpoint = out / "checkpoint.npz"
    if checkpoint.exists():
        (params, opt_state), extras = load_leaves(checkpoint, (params, opt_state))
        step, best_val, bad_evals, cleaned_at = (
            int(extras["step"]),
            float(extras["best_val"]),
            int(extras["bad_evals"]),
            int(extras.get("cleaned_at", -1)),
        )
        if cleaned_at >= 0:
            splits = {
                name: split.with_column("a_k", extras[f"{name}_a_k"], extras[f"{name}_a_k_err"])
                for name, split in splits.items()
            }
        print(f"resuming from step {step} (best validation NLL {best_val:.4f})")
    train_stars = normalise_stars(splits["train"], vocabulary)
    val_batches = _validation_batches(splits["validation"], vocabulary, run, query)

    def save_checkpoint():
        cleaned = {
            f"{name}_{column}": value
            for name, split in splits.items()
            for column, value in zip(("a_k", "a_k_err"), split.column("a_k"), strict=True)
        }
        save_leaves(
            checkpoint,
            (params, opt_state),
            step=step,
            best_val=best_val,
            bad_evals=bad_evals,
            cleaned_at=cleaned_at,
            **cleaned,
        )

    def evaluate(p):
        return float(np.mean([eval_loss(p, b) for b in val_batches]))

    bar = tqdm(total=cfg.max_steps, initial=step, disable=not progress, desc="training")
    last_save, start, losses = time.time(), time.time(), []
    with (out / "metrics.jsonl").open("a") as log:
        while step < cfg.max_steps and bad_evals < cfg.patience:
            every = cfg.latent_extinction_every
            if every and step % every == 0 and cleaned_at != step:
                emulator = make_emulator(current_model(params))
                splits = {
                    name: clean_extinction(
                        emulator, split, ak_targ[name], cfg.extinction_prior_sd, progress
                    )
                    for name, split in splits.items()
                }
                train_stars = normalise_stars(splits["train"], vocabulary)
                val_batches = _validation_batches(splits["validation"], vocabulary, run, query)
                cleaned_at = step
                save_checkpoint()
            rng = np.random.default_rng([run.seed, step])
            rows = rng.integers(0, len(splits["train"]), size=cfg.batch_size)
            batch = _draw(train_stars, rows, rng, vocabulary, run, query)
            params, opt_state, loss = train_step(params, opt_state, batch)
            step += 1
            losses.append(float(loss))
            bar.update(1)
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                val = evaluate(params)
                if val < best_val:
                    best_val, bad_evals = val, 0
                    current_model(params).save(out / "best")
                    save_extinction(
                        out / "best_extinction.npz",
                        splits["train"].source_id,
                        *splits["train"].column("a_k"),
                    )
                else:
                    bad_evals += 1
                record = {
                    "step": step,
                    "train_nll": float(np.mean(losses)),
                    "val_nll": val,
                    "best_val_nll": best_val,
                    "learning_rate": float(schedule(step)),
                    "elapsed_s": time.time() - start,
                }
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(train=f"{record['train_nll']:.3f}", val=f"{val:.3f}")
                losses = []
            if time.time() - last_save > cfg.checkpoint_every_s or step == cfg.max_steps:
                save_checkpoint()
                last_save = time.time()
    bar.close()
    save_checkpoint()
    if not (out / "best.safetensors").exists():
        current_model(params).save(out / "best")
    return FoundationModel.load(out / "best")
