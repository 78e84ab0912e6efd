"""Self-supervised training of the foundation model: the resumable loop. The pure step
(``bayesfm.model.train_step``) is wired here to the data, checkpoints (every few minutes, atomic,
exact resume: the batch of step s is drawn from a generator seeded with (seed, s)),
validation-split early stopping, latent extinction refits, metrics (JSONL), a progress bar."""

import functools
import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from bayesfm.common.pytree_io import load_leaves, save_leaves
from bayesfm.model.abundance_donors import AbundanceDonors
from bayesfm.model.batching import EmulatorQuery, emulator_context_errors, sample_batch
from bayesfm.model.emulator import make_emulator
from bayesfm.model.extinction_fit import clean_extinction, save_extinction
from bayesfm.model.foundation_model import FoundationModel, build_model
from bayesfm.model.train_config import RunConfig
from bayesfm.model.train_step import (
    NormalisedStars,
    make_eval_loss,
    make_optimizer,
    make_train_step,
    normalise_stars,
)
from bayesfm.model.transformer import TransformerConfig
from bayesfm.model.warm_start import warm_start_params
from bayesfm.tokens.specs import default_token_specs
from bayesfm.tokens.split import split_mask
from bayesfm.tokens.star_tokens import StarTokens
from bayesfm.tokens.vocabulary import Vocabulary, fit_vocabulary

__all__ = ["train"]

# Splits whose a_k the latent extinction refits (validation: its NLL picks the best weights)
_FITTED_SPLITS = ("train", "validation")


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


class _Run:
    """One training run's state (weights, optimiser, counters, cleaned extinctions) and
    what happens to it between steps."""

    def __init__(self, run: RunConfig, tokens: StarTokens, out: Path):
        self.run, self.checkpoint = run, out / "checkpoint.npz"
        self.splits = {
            name: tokens.take(split_mask(tokens.source_id, name)) for name in _FITTED_SPLITS
        }
        self.ak_targ = {name: split.column("a_k")[0] for name, split in self.splits.items()}
        self.vocabulary = fit_vocabulary(
            self.splits["train"], default_token_specs(run.binning), run.binning
        )
        context_errors = emulator_context_errors(
            normalise_stars(self.splits["train"], self.vocabulary), self.vocabulary
        )
        stand_ins = run.training.stand_in_abundances
        self.donors = AbundanceDonors.from_tokens(self.splits["train"]) if stand_ins else None
        self.query = EmulatorQuery.build(self.vocabulary, context_errors, self.donors)
        self.model_config = TransformerConfig(n_tokens=len(self.vocabulary), **run.model)
        self.graphdef, self.params = build_model(self.model_config, seed=run.seed)
        if run.init_from is not None:
            self.params = warm_start_params(
                run.init_from, self.model_config, self.vocabulary, self.params
            )
        optimizer, self.schedule = make_optimizer(run.training)
        self.opt_state = optimizer.init(self.params)
        per_star, beta = run.training.loss_per_star, run.training.nll_beta
        self.train_step = make_train_step(self.graphdef, optimizer, per_star, beta)
        self.eval_loss = make_eval_loss(self.graphdef, per_star, beta)
        self.info = {
            "data_hash": self.splits["train"].content_hash(),
            "run_config": run.to_dict(),
            "emulator_context_errors": context_errors,
        }
        self.step, self.best_val, self.bad_evals, self.cleaned_at = 0, np.inf, 0, -1
        if self.checkpoint.exists():
            self._resume()
        self._normalise_splits()

    def model(self) -> FoundationModel:
        return FoundationModel(
            self.model_config, self.vocabulary, self.graphdef, self.params, self.info
        )

    def _resume(self):
        (self.params, self.opt_state), extras = load_leaves(
            self.checkpoint, (self.params, self.opt_state)
        )
        self.step, self.best_val, self.bad_evals, self.cleaned_at = (
            int(extras["step"]),
            float(extras["best_val"]),
            int(extras["bad_evals"]),
            int(extras.get("cleaned_at", -1)),
        )
        if self.cleaned_at >= 0:
            self.splits = {
                name: split.with_column("a_k", extras[f"{name}_a_k"], extras[f"{name}_a_k_err"])
                for name, split in self.splits.items()
            }
        print(f"resuming from step {self.step} (best validation NLL {self.best_val:.4f})")

    def _normalise_splits(self):
        self.train_stars = normalise_stars(self.splits["train"], self.vocabulary)
        self.val_batches = _validation_batches(
            self.splits["validation"], self.vocabulary, self.run, self.query
        )

    def save_checkpoint(self):
        cleaned = {
            f"{name}_{column}": value
            for name, split in self.splits.items()
            for column, value in zip(("a_k", "a_k_err"), split.column("a_k"), strict=True)
        }
        save_leaves(
            self.checkpoint,
            (self.params, self.opt_state),
            step=self.step,
            best_val=self.best_val,
            bad_evals=self.bad_evals,
            cleaned_at=self.cleaned_at,
            **cleaned,
        )

    def refit_extinction(self, progress: bool):
        """Each star's a_k refitted by the current emulator (latent extinction)."""
        cfg = self.run.training
        clean = functools.partial(
            clean_extinction,
            make_emulator(self.model()),
            prior_sd=cfg.extinction_prior_sd,
            progress=progress,
            anchor=cfg.extinction_anchor,
        )
        self.splits = {
            name: split.with_column(
                "a_k", *clean(self._for_extinction_fit(split), self.ak_targ[name]).column("a_k")
            )
            for name, split in self.splits.items()
        }
        self._normalise_splits()
        self.cleaned_at = self.step
        self.save_checkpoint()

    def _for_extinction_fit(self, split: StarTokens) -> StarTokens:
        """The a_k fit needs all four labels: the donors' typical ones where they stand in."""
        return split if self.donors is None else self.donors.with_typical(split)

    def take_step(self) -> float:
        rng = np.random.default_rng([self.run.seed, self.step])
        rows = rng.integers(0, len(self.splits["train"]), size=self.run.training.batch_size)
        batch = _draw(self.train_stars, rows, rng, self.vocabulary, self.run, self.query)
        self.params, self.opt_state, loss = self.train_step(self.params, self.opt_state, batch)
        self.step += 1
        return float(loss)

    def evaluate(self, out: Path) -> float:
        """Validation NLL; a new best is saved with its cleaned extinctions."""
        val = float(np.mean([self.eval_loss(self.params, b) for b in self.val_batches]))
        if val < self.best_val:
            self.best_val, self.bad_evals = val, 0
            self.model().save(out / "best")
            train = self.splits["train"]
            save_extinction(out / "best_extinction.npz", train.source_id, *train.column("a_k"))
        else:
            self.bad_evals += 1
        return val


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
    cfg, state = run.training, _Run(run, tokens, out)
    bar = tqdm(total=cfg.max_steps, initial=state.step, disable=not progress, desc="training")
    last_save, start, losses = time.time(), time.time(), []
    with (out / "metrics.jsonl").open("a") as log:
        while state.step < cfg.max_steps and state.bad_evals < cfg.patience:
            every = cfg.latent_extinction_every
            if every and state.step % every == 0 and state.cleaned_at != state.step:
                state.refit_extinction(progress)
            losses.append(state.take_step())
            bar.update(1)
            if state.step % cfg.eval_every == 0 or state.step == cfg.max_steps:
                val = state.evaluate(out)
                record = {
                    "step": state.step,
                    "train_nll": float(np.mean(losses)),
                    "val_nll": val,
                    "best_val_nll": state.best_val,
                    "learning_rate": float(state.schedule(state.step)),
                    "elapsed_s": time.time() - start,
                }
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(train=f"{record['train_nll']:.3f}", val=f"{val:.3f}")
                losses = []
            if time.time() - last_save > cfg.checkpoint_every_s or state.step == cfg.max_steps:
                state.save_checkpoint()
                last_save = time.time()
    bar.close()
    state.save_checkpoint()
    if not (out / "best.safetensors").exists():
        state.model().save(out / "best")
    return FoundationModel.load(out / "best")
