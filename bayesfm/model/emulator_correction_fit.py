"""Fitting the emulator's correction (``bayesfm.model.emulator_correction``) on the train split."""

from dataclasses import dataclass, replace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesfm.common.errors import DataError
from bayesfm.common.jsonio import to_json
from bayesfm.model.emulator import make_emulator
from bayesfm.model.extinction_fit import load_extinction
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.model.latent_a_k import latent_a_k
from bayesfm.model.mlp import fit_on_minibatches, init_mlp, mlp
from bayesfm.model.response_penalty import response_term, scale_term
from bayesfm.model.train_step import gaussian_nll
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.star_tokens import StarTokens

__all__ = [
    "CorrectionConfig",
    "CorrectionFit",
    "fit_emulator_correction",
    "with_emulator_correction",
    "carrying_correction",
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
    # None: free; else one A(55)/A(K) for every star at a given a_k, within about this
    # fraction (the response's shape stays free)
    scale_tolerance: float | None = None
    # None: each star's a_k is its cleaned A_K; else an offset from it is fitted too, with
    # this prior sd [transformer a_k] (bayesfm.model.latent_a_k)
    latent_a_k: float | None = None


class CorrectionFit(NamedTuple):
    """A fitted correction: its layers [(w, b)], and per training star [N] the a_k it was
    fitted at and that value's uncertainty (transformer scale; NaN for stars without all
    five inputs; the error is NaN unless ``latent_a_k``)."""

    layers: tuple
    a_k: np.ndarray
    a_k_err: np.ndarray


def fit_emulator_correction(
    model: FoundationModel, train: StarTokens, config=CorrectionConfig(), progress=True
) -> CorrectionFit:
    """The correction fitted on ``train``'s stars that have all five inputs (their a_k: the
    cleaned A_K on the transformer's own scale, moved by a fitted offset with
    ``config.latent_a_k``).

    The last layer keeps only the mean shift's outputs, one per token of the default emulator
    (``make_emulator(model)``'s outputs), in normalised units. With ``config.reads_means`` the
    inputs are the five normalised labels and the transformer's normalised means.
    """
    plain = make_emulator(replace(model, emulator_correction=()), extinction_law=False)
    complete, inputs = _complete_rows(train)
    features, residual, error, present = _residuals(model, plain, train, complete, inputs, config)
    n_out = len(plain.outputs)
    layers = init_mlp(
        jax.random.PRNGKey(config.seed), [features.shape[1], *config.hidden, 2 * n_out]
    )
    params = {"layers": [*layers[:-1], (_OUTPUT_INIT * layers[-1][0], layers[-1][1])]}
    errors = train.errors[complete][:, train.index(plain.outputs)]
    penalties = _response_penalties(plain, model.vocabulary, inputs, errors, config, params)
    latent = None
    if config.latent_a_k is not None:
        latent = latent_a_k(plain, model.vocabulary, inputs, config.reads_means, config.latent_a_k)
        params["a_k_offset"] = jnp.zeros(len(features))

    def fitted(params, rows):
        """(shift, log-variance, residual) of ``rows`` at their (moved) a_k."""
        at, misfit = features[rows], residual[rows]
        if latent is not None:
            at, misfit = latent.moved(at, misfit, params["a_k_offset"][rows], rows)
        return (*mlp(params["layers"], at), misfit)

    def loss(params, rows):
        nll = gaussian_nll(*fitted(params, rows), error[rows], present[rows])
        if latent is not None:
            nll = nll + latent.prior(params["a_k_offset"][rows], n_out)
        return nll + sum(p(params["layers"], params[n], rows) for n, p in penalties.items())

    params = fit_on_minibatches(
        loss, params, len(features), config, "emulator correction", progress
    )
    a_k, a_k_err = (np.full(len(train), np.nan) for _ in range(2))
    a_k[complete] = inputs[:, LABEL_INPUTS.index("a_k")]
    if latent is not None:
        rows = jnp.arange(len(features))
        _, log_variance, _ = fitted(params, rows)
        a_k[complete] += np.asarray(params["a_k_offset"])
        a_k_err[complete] = latent.posterior_sd(jnp.exp(log_variance) + error**2, present)
    w, b = params["layers"][-1]
    hidden = [tuple(np.asarray(a) for a in layer) for layer in params["layers"][:-1]]
    return CorrectionFit((*hidden, (np.asarray(w[:, :n_out]), np.asarray(b[:n_out]))), a_k, a_k_err)


def _response_penalties(plain, vocabulary, inputs, errors, config, params) -> dict:
    """{name: penalty(layers, its parameter, rows)} of the response penalties ``config``
    asks for (``bayesfm.model.response_penalty``), their parameters' start put in ``params``."""
    penalties = {}
    for name, term, tolerance in (
        ("curve", response_term, config.response_tolerance),
        ("a55", scale_term, config.scale_tolerance),
    ):
        if tolerance is not None:
            rng = np.random.default_rng(config.seed)
            params[name], penalties[name] = term(
                plain, vocabulary, inputs, errors, config.reads_means, tolerance, rng
            )
    return penalties


def _residuals(model, plain, train, complete, inputs, config):
    """The correction's features, and the normalised residuals, errors and presence [n, K]
    of ``train``'s complete rows against the transformer's means."""
    columns = train.index(plain.outputs)
    out_scaling = model.vocabulary.scaling(plain.outputs)
    mean = plain.batch(inputs)[0]
    residual = (train.values[complete][:, columns] - mean) / out_scaling.scale
    error = train.errors[complete][:, columns] / out_scaling.scale
    features = model.vocabulary.scaling(LABEL_INPUTS).normalise(inputs)
    if config.reads_means:
        features = np.column_stack([features, out_scaling.normalise(mean)])
    present = np.isfinite(residual) & np.isfinite(error)
    features, residual, error = (
        jnp.asarray(a, jnp.float32)
        for a in (features, np.where(present, residual, 0.0), np.where(present, error, 1.0))
    )
    return features, residual, error, jnp.asarray(present)


def with_emulator_correction(
    model: FoundationModel, train: StarTokens, config=CorrectionConfig(), progress=True
) -> FoundationModel:
    """``model`` carrying a correction fitted on ``train`` (``fit_emulator_correction``)."""
    return carrying_correction(
        model, fit_emulator_correction(model, train, config, progress), config
    )


def carrying_correction(model: FoundationModel, fit: CorrectionFit, config) -> FoundationModel:
    """``model`` carrying ``fit``'s correction, its recipe and number of training stars
    recorded in ``info["emulator_correction"]``."""
    record = {**to_json(config), "train_stars": int(np.isfinite(fit.a_k).sum())}
    info = {**model.info, "emulator_correction": record}
    return replace(model, emulator_correction=fit.layers, info=info)


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
