"""Fitting the emulator's correction (``bayesfm.model.emulator_correction``) on the train split."""

from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np

from bayesfm.common.errors import DataError
from bayesfm.common.jsonio import to_json
from bayesfm.model.emulator import make_emulator
from bayesfm.model.extinction_fit import load_extinction
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.model.mlp import fit_on_minibatches, init_mlp, mlp
from bayesfm.model.response_penalty import response_term
from bayesfm.model.train_step import gaussian_nll
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.star_tokens import StarTokens

__all__ = [
    "CorrectionConfig",
    "fit_emulator_correction",
    "with_emulator_correction",
    "with_cleaned_a_k",
]

_OUTPUT_INIT = 0.01  # the last layer starts this small: the correction starts near zero


@dataclass(frozen=True)
class CorrectionConfig:
    """The correction's recipe."""

    hidden: tuple = (256, 256)
    steps: int = 20000
    batch_size: int = 512
    learning_rate: float = 2e-3  # peak of a one-cycle cosine schedule
    seed: int = 0
    reads_means: bool = True  # the transformer's means join the labels as inputs
    # None: the a_k response is free; else one response for every star, within about this
    # many observational errors per unit a_k (bayesfm.model.response_penalty)
    response_tolerance: float | None = None


def fit_emulator_correction(
    model: FoundationModel, train: StarTokens, config=CorrectionConfig(), progress=True
) -> tuple:
    """The correction's layers [(w, b)], fitted on ``train``'s stars that have all five inputs
    (their a_k: the cleaned A_K on the transformer's own scale).

    The last layer keeps only the mean shift's outputs, one per token of the default emulator
    (``make_emulator(model)``'s outputs), in normalised units. With ``config.reads_means`` the
    inputs are the five normalised labels and the transformer's normalised means.
    """
    plain = make_emulator(replace(model, emulator_correction=()), extinction_law=False)
    complete, inputs = _complete_rows(train)
    columns = train.index(plain.outputs)
    out_scaling = model.vocabulary.scaling(plain.outputs)
    in_scaling = model.vocabulary.scaling(LABEL_INPUTS)
    mean = plain.batch(inputs)[0]
    residual = (train.values[complete][:, columns] - mean) / out_scaling.scale
    error = train.errors[complete][:, columns] / out_scaling.scale
    features = in_scaling.normalise(inputs)
    if config.reads_means:
        features = np.column_stack([features, out_scaling.normalise(mean)])
    present = np.isfinite(residual) & np.isfinite(error)
    features, residual, error = (
        jnp.asarray(a, jnp.float32)
        for a in (features, np.where(present, residual, 0.0), np.where(present, error, 1.0))
    )
    present = jnp.asarray(present)
    n_out = len(plain.outputs)
    layers = init_mlp(
        jax.random.PRNGKey(config.seed), [features.shape[1], *config.hidden, 2 * n_out]
    )
    params = {"layers": [*layers[:-1], (_OUTPUT_INIT * layers[-1][0], layers[-1][1])]}
    penalty = None
    if config.response_tolerance is not None:
        params["curve"], penalty = response_term(
            plain,
            model.vocabulary,
            inputs,
            train.errors[complete][:, columns],
            config.reads_means,
            config.response_tolerance,
            np.random.default_rng(config.seed),
        )

    def loss(params, rows):
        shift, log_variance = mlp(params["layers"], features[rows])
        nll = gaussian_nll(shift, log_variance, residual[rows], error[rows], present[rows])
        return nll if penalty is None else nll + penalty(params["layers"], params["curve"], rows)

    params = fit_on_minibatches(
        loss, params, len(features), config, "emulator correction", progress
    )
    w, b = params["layers"][-1]
    hidden = [tuple(np.asarray(a) for a in layer) for layer in params["layers"][:-1]]
    return (*hidden, (np.asarray(w[:, :n_out]), np.asarray(b[:n_out])))


def with_emulator_correction(
    model: FoundationModel, train: StarTokens, config=CorrectionConfig(), progress=True
) -> FoundationModel:
    """``model`` carrying a correction fitted on ``train`` (``fit_emulator_correction``), its
    recipe and number of training stars recorded in ``info["emulator_correction"]``."""
    layers = fit_emulator_correction(model, train, config, progress)
    record = {**to_json(config), "train_stars": int(_complete_rows(train)[0].sum())}
    info = {**model.info, "emulator_correction": record}
    return replace(model, emulator_correction=layers, info=info)


def _complete_rows(train: StarTokens):
    """Which of ``train``'s stars have all five inputs [N] (bool), and their inputs [n, 5]."""
    inputs = train.values[:, train.index(LABEL_INPUTS)]
    rows = np.isfinite(inputs).all(axis=1)
    if not rows.any():
        raise DataError("no training star has all of teff, logg, fe_h, alpha_m and a_k")
    return rows, inputs[rows].astype(np.float32)


def with_cleaned_a_k(train: StarTokens, path) -> StarTokens:
    """``train`` whose a_k is the cleaned A_K of ``path`` (``save_extinction``'s file: the
    transformer's own a_k scale), NaN for the stars it does not cover."""
    cleaned = load_extinction(path)
    a_k, a_k_err = (np.full(len(train), np.nan) for _ in range(2))
    for row, source_id in enumerate(train.source_id.tolist()):
        if source_id in cleaned:
            a_k[row], a_k_err[row] = cleaned[source_id]
    return train.with_column("a_k", a_k, a_k_err)
