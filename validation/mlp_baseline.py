"""A plain MLP on spectra(+colours) -> labels: how much the inputs hold for a neural network.

Run:  python validation/mlp_baseline.py [--steps 4000] [--seed 0]

Trains an MLP (34 normalised inputs, absent ones 0 -> 3 x 256 gelu -> mean and log-variance
of 4 labels; Gaussian NLL with the labels' errors; AdamW, cosine decay) on the train split
and prints the validation split's robust sigma per label. It is the yardstick that showed the
attention-only transformer, not the data, limited spectra -> labels (docs/model_card.md),
and it never sees test stars. Writes validation/mlp_baseline.txt.
"""

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bayesfm.common.metrics import robust_sigma
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.model.mlp import init_mlp, mlp
from bayesfm.model.train_step import gaussian_nll, normalise_stars
from bayesfm.sources.library import load_library
from bayesfm.tokens.labels import LABELS
from bayesfm.tokens.split import split_mask

HIDDEN = (256, 256, 256)
BATCH = 512


def nll(layers, x, y, error, present):
    return gaussian_nll(*mlp(layers, x), y, error, present)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    vocabulary = FoundationModel.load().vocabulary
    tokens = load_library(binning=vocabulary.binning).tokens
    stars = normalise_stars(tokens, vocabulary)
    inputs = tokens.index(vocabulary.names_in_group("xp_bp", "xp_rp", "colour"))
    labels = tokens.index(list(LABELS))  # columns of the normalised star arrays
    x = jnp.asarray(stars.values[:, inputs])
    y, error, present = (
        jnp.asarray(a[:, labels]) for a in (stars.values, stars.errors, stars.present)
    )
    train = np.flatnonzero(split_mask(tokens.source_id, "train"))
    validation = split_mask(tokens.source_id, "validation")

    layers = init_mlp(jax.random.PRNGKey(args.seed), [x.shape[1], *HIDDEN, 2 * len(labels)])
    schedule = optax.warmup_cosine_decay_schedule(0.0, 1e-3, 200, args.steps, 1e-5)
    optimizer = optax.adamw(schedule, weight_decay=1e-4)
    state = optimizer.init(layers)

    @jax.jit
    def step(layers, state, rows):
        loss, grads = jax.value_and_grad(nll)(layers, x[rows], y[rows], error[rows], present[rows])
        updates, state = optimizer.update(grads, state, layers)
        return optax.apply_updates(layers, updates), state, loss

    rng = np.random.default_rng(args.seed)
    for _ in range(args.steps):
        layers, state, _ = step(layers, state, rng.choice(train, BATCH))

    mean, _ = mlp(layers, x[validation])
    in_vocabulary = vocabulary.index(list(LABELS))
    predicted = np.asarray(mean) * vocabulary.scale[in_vocabulary] + vocabulary.loc[in_vocabulary]
    truth = tokens.values[validation][:, labels]
    lines = [f"MLP {HIDDEN}, {args.steps} steps of {BATCH}, seed {args.seed}; validation split"]
    for i, name in enumerate(LABELS):
        lines.append(f"{name:<8} robust sigma {robust_sigma(predicted[:, i] - truth[:, i]):.4g}")
    print("\n".join(lines))
    Path("validation/mlp_baseline.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
