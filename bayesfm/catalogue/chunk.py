"""One chunk of a catalogue: importance sampling, NUTS where it fails, the amortized labels
for stars outside the training domain (``outside_domain``), checks and summary rows."""

import time
from dataclasses import dataclass, field

import jax
import numpy as np
import pandas as pd

from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.catalogue.outside_domain import record_amortized
from bayesfm.catalogue.rows import empty_table, summarise_draws
from bayesfm.common.stopwatch import Stopwatch
from bayesfm.infer.batched_nuts import chain_diagnostics, run_batched_nuts
from bayesfm.infer.diagnostics import ConvergenceCriteria
from bayesfm.infer.importance import ImportanceResult, run_importance
from bayesfm.infer.mode import laplace_proposal
from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.infer.trust import TrustCriteria, amortized_inside, assess, flag_notes
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["ChunkResult", "fit_chunk"]

TRUST_COLUMNS = (
    "fit_chi2",
    "fit_dof",
    "fit_p",
    "outside_domain_fraction",
    "amortized_in_domain",
    "trusted",
)
EVALUATION_KINDS = ("importance_draws", "mode_gradients", "mode_hessians", "nuts_leapfrog")


@dataclass
class ChunkResult:
    """One chunk's summary rows, (optionally) equal-weight draws [n, S, 5] physical, and
    its cost: seconds per stage and target-density evaluations by kind (written next to
    its CSV as ``chunk_<index>_cost.json``)."""

    table: pd.DataFrame
    draws: np.ndarray | None = field(default=None)
    cost: dict = field(default_factory=dict)


def fit_chunk(
    setup: StarInference, stars: StarTokens, config: CatalogueConfig, index: int, anchors=None
):
    """Posteriors of the stars of chunk ``index`` (its randomness depends on seed and index).

    ``anchors``: labels [n, 5] at which to take the emulator sigma (see ``stars_data``).
    """
    start, watch = time.perf_counter(), Stopwatch()
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), index)
    is_key, nuts_key, scatter_key = jax.random.split(key, 3)
    n = len(stars)
    table = empty_table(stars)
    draws = np.full((n, _draws_per_star(config), len(LABEL_INPUTS)), np.nan, np.float32)
    evaluations = dict.fromkeys(EVALUATION_KINDS, 0)
    with watch("amortized prediction"):
        data, usable, problems, mean, sigma = prepare_stars(setup, stars, anchors)
    for row, reason in problems.items():
        table.loc[row, ["path", "flags"]] = ["skipped", reason]
    if not usable:
        return _finished(table, draws, config, start, watch, evaluations)

    inside = amortized_inside(setup, mean, config.trust)
    sampled = inside | (config.outside_domain == "posterior")
    if sampled.any():
        subset = jax.tree_util.tree_map(lambda a: a[sampled], data)
        in_play = (np.asarray(usable)[sampled], subset, mean[sampled], sigma[sampled])
        keys = (is_key, nuts_key)
        evaluations |= _sample(setup, in_play, inside[sampled], config, keys, table, draws, watch)

    with watch("summary and trust"):
        draws = _on_survey_scale(setup, draws, data, usable, scatter_key)
        outside = np.asarray(usable)[~sampled]
        amortized_key = jax.random.fold_in(scatter_key, 1)
        record_amortized(table, draws, outside, mean[~sampled], sigma[~sampled], amortized_key)
        summarise_draws(table, draws)
        _assess_trust(setup, table, data, usable, mean, draws, config.trust)
    return _finished(table, draws, config, start, watch, evaluations)


def _sample(setup, in_play, inside, config, keys, table, draws, watch) -> dict:
    """Posteriors of the stars ``in_play`` = (rows, data, amortized mean, sigma): importance
    sampling and NUTS where it fails (NUTS for all with method "nuts"), recorded in ``table``
    and ``draws``; returns their target-density evaluations by kind."""
    rows, data, mean, sigma = in_play
    (is_key, nuts_key), n = keys, len(rows)
    z_mean, z_sigma = setup.scaling.normalise(mean), sigma / setup.scaling.scale
    if config.method == "nuts":
        with watch("mode"):
            proposal, evaluations = laplace_proposal(
                setup, data, z_mean, z_sigma, config.importance
            )
        loc, chol = proposal.main()
        to_nuts = np.ones(n, bool)
    else:
        result = run_importance(setup, data, z_mean, z_sigma, is_key, config.importance, watch)
        evaluations = result.mode_evaluations | {"importance_draws": int(result.evaluations.sum())}
        loc, chol = result.loc, result.chol
        to_nuts = _record_importance(setup, table, draws, rows, result, inside, config)
    if to_nuts.any():
        picked = np.flatnonzero(to_nuts)
        subset = jax.tree_util.tree_map(lambda a: a[picked], data)
        with watch("nuts fallback"):
            chains = run_batched_nuts(
                setup, subset, loc[picked], chol[picked], nuts_key, config.nuts
            )
            _record_nuts(table, rows[picked], chains, config.convergence)
        evaluations["nuts_leapfrog"] = int(chains.leapfrog_steps.sum())
        per_star = chains.z.reshape(len(picked), -1, len(LABEL_INPUTS))
        draws[rows[picked], : per_star.shape[1]] = _physical(setup, per_star)
    return evaluations


def _on_survey_scale(setup, draws, data, usable, key):
    """The draws [n, S, 5] plus the label scatter at each usable star's flux noise level."""
    level = np.full(len(draws), np.nan)
    level[usable] = setup.noise.flux_noise_level(data)
    return setup.noise.scatter_labels(draws, key, level[:, None])


def _record_importance(setup, table, draws, rows, result: ImportanceResult, inside, config):
    """Importance sampling's columns and draws of stars ``rows``; which of them go to NUTS.

    NUTS cannot rescue a star whose amortized labels are outside the training domain
    (``inside`` False): it keeps its importance draws and its flags.
    """
    table.loc[rows, "khat"] = result.khat
    table.loc[rows, "importance_ess"] = result.ess
    accepted = result.accepted
    to_nuts = ~accepted & inside if config.method == "auto" else np.zeros_like(accepted)
    done = rows[~to_nuts]
    table.loc[done, "path"] = "importance"
    table.loc[done, "ok"] = accepted[~to_nuts]
    table.loc[rows[~accepted], "flags"] = "importance weights unreliable (k-hat or ESS)"
    draws[done, : config.importance.num_keep] = _physical(setup, result.z[~to_nuts])
    return to_nuts


def _finished(table, draws, config, start, watch, evaluations) -> ChunkResult:
    """The chunk's result, its wall time shared among its stars (``seconds``)."""
    seconds = time.perf_counter() - start
    table["seconds"] = seconds / len(table)
    cost = {"stars": len(table), "seconds": seconds, "stages": dict(watch.seconds)}
    return ChunkResult(
        table, draws if config.save_draws else None, cost | {"evaluations": evaluations}
    )


def _assess_trust(setup, table, data, usable, amortized, draws, criteria: TrustCriteria):
    """The trust columns of the usable stars (see ``bayesfm.infer.trust``)."""
    rows = np.asarray(usable)
    median = table.loc[rows, [f"{n}_median" for n in LABEL_INPUTS]].to_numpy(np.float32)
    fitted = np.isfinite(median).all(axis=1)
    if not fitted.any():
        return
    rows, subset = rows[fitted], jax.tree_util.tree_map(lambda a: a[fitted], data)
    sampler_ok = table.loc[rows, "ok"].to_numpy(bool)
    columns = assess(
        setup, subset, median[fitted], draws[rows], sampler_ok, amortized[fitted], criteria
    )
    for name in TRUST_COLUMNS:
        table.loc[rows, name] = columns[name]
    names = ("fit_ok", "in_domain", "amortized_in_domain")
    checks = zip(*(columns[name] for name in names), strict=True)
    for row, check in zip(rows, checks, strict=True):
        notes = [table.at[row, "flags"]] if table.at[row, "flags"] else []
        table.at[row, "flags"] = "; ".join(notes + flag_notes(*check))


def _draws_per_star(config: CatalogueConfig) -> int:
    nuts = config.nuts.num_chains * config.nuts.num_samples
    return max(config.importance.num_keep, nuts)


def _physical(setup, z):
    return setup.scaling.physical(z).astype(np.float32)


def _record_nuts(table, rows, chains, criteria: ConvergenceCriteria):
    diagnostics = chain_diagnostics(chains)
    for name, values in diagnostics.items():
        table.loc[rows, name] = values
    converged = criteria.passed(
        diagnostics["max_rhat"], diagnostics["min_ess_bulk"], diagnostics["divergences"]
    )
    table.loc[rows, "path"] = "nuts"
    table.loc[rows, "ok"] = converged
    for row, good, bound in zip(
        rows, converged, diagnostics["depth_bound_fraction"] > 0.05, strict=True
    ):
        notes = [table.at[row, "flags"]] if table.at[row, "flags"] else []
        notes += [] if good else ["NUTS not converged (R-hat, ESS or divergences)"]
        notes += ["NUTS trajectories hit the tree-depth bound"] if bound else []
        table.at[row, "flags"] = "; ".join(notes)
