"""Variational inference for one star, with the guide checked as an importance proposal."""

import time

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.infer import SVI, Predictive, Trace_ELBO, autoguide
from numpyro.infer.util import log_density, log_likelihood

from bayesfm.bayes.star_model import StarData
from bayesfm.common.devices import full_precision
from bayesfm.infer.diagnostics import quiet_arviz
from bayesfm.infer.idata import finish
from bayesfm.infer.settings import SviConfig
from bayesfm.infer.setup import StarInference, one_star
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["run_svi", "fit_svi", "GUIDES"]

GUIDES = {  # keyed by settings.GUIDE_NAMES
    "normal": autoguide.AutoNormal,
    "mvn": autoguide.AutoMultivariateNormal,
    "iaf": autoguide.AutoIAFNormal,
}


@full_precision
def run_svi(
    setup: StarInference, stars: StarTokens, row: int, key, config: SviConfig = SviConfig()
) -> az.InferenceData:
    """Variational posterior of star ``row`` (prepared by ``prepare_stars``), started at its
    amortized prediction: ``fit_svi`` of the prepared star."""
    data, start = one_star(setup, stars, row)
    return fit_svi(setup, data, start, stars.source_id[row], key, config)


@full_precision
def fit_svi(
    setup: StarInference, data: StarData, start, source_id, key, config: SviConfig = SviConfig()
) -> az.InferenceData:
    """Variational posterior of one prepared star from physical labels ``start`` [5], with
    the guide of ``config`` (AutoNormal, AutoMultivariateNormal or AutoIAFNormal), checked
    as an importance proposal."""
    z0 = setup.scaling.normalise(np.asarray(start))
    guide_fn = GUIDES[config.guide](
        setup.star_model, init_loc_fn=numpyro.infer.init_to_value(values={"z": jnp.asarray(z0)})
    )
    svi = SVI(setup.star_model, guide_fn, numpyro.optim.Adam(config.learning_rate), Trace_ELBO())
    fit_key, draw_key, pp_key, scatter_key = jax.random.split(key, 4)
    t0 = time.perf_counter()
    result = svi.run(fit_key, config.num_steps, data, progress_bar=False)
    z, log_guide = _guide_draws(guide_fn, result.params, data, draw_key, config.num_draws)
    samples = Predictive(
        setup.star_model, posterior_samples={"z": z}, return_sites=["z", *LABEL_INPUTS]
    )(draw_key, data)
    jax.block_until_ready(samples)
    seconds = time.perf_counter() - t0
    replicated = Predictive(
        setup.star_model, posterior_samples={"z": samples["z"]}, return_sites=["obs"]
    )(pp_key, data, replicate=True)
    loglik = log_likelihood(setup.star_model, {"z": samples["z"]}, data)["obs"]
    log_joint = _log_joint(setup, data, samples["z"])
    _, khat = az.psislw(np.asarray(log_joint - log_guide, np.float64))
    with quiet_arviz():
        idata = az.from_dict(
            posterior={k: np.asarray(v)[None] for k, v in samples.items()},
            posterior_predictive={"obs": np.asarray(replicated["obs"])[None]},
            log_likelihood={"obs": np.asarray(loglik)[None]},
            observed_data={"obs": np.asarray(data.values)},
            sample_stats={"lp": np.asarray(log_joint)[None]},
            coords={"token": list(setup.emulator.outputs), "label": list(LABEL_INPUTS)},
            dims={"obs": ["token"], "z": ["label"]},
        )
    idata.posterior.attrs.update(
        {"svi_khat": float(khat), "elbo_settled": int(_elbo_settled(np.asarray(result.losses)))}
    )
    method = f"svi-{config.guide}"
    return finish(idata, data, source_id, method, seconds, setup.noise, scatter_key)


def _guide_draws(guide_fn, params, data, key, n):
    """(z draws [n, 5], their log guide density [n]): every sample site of the guide's trace
    counts, so auxiliary latents and Jacobians of multivariate guides are included."""
    handlers = numpyro.handlers
    guide = handlers.substitute(guide_fn, data=params)

    def one(k):
        trace = handlers.trace(handlers.seed(guide, k)).get_trace(data)
        sites = [site for site in trace.values() if site["type"] == "sample"]
        log_q = sum(jnp.sum(site["fn"].log_prob(site["value"])) for site in sites)
        return trace["z"]["value"], log_q

    return jax.vmap(one)(jax.random.split(key, n))


def _elbo_settled(losses, tolerance=1.0) -> bool:
    """Whether the mean loss of the last tenth of the steps is within ``tolerance`` nats of
    the tenth before it (the ELBO no longer improving)."""
    tenth = max(len(losses) // 10, 1)
    last, before = losses[-tenth:], losses[-2 * tenth : -tenth]
    return bool(np.all(np.isfinite(last)) and abs(np.mean(before) - np.mean(last)) <= tolerance)


def _log_joint(setup, data, z_draws):
    return jax.vmap(lambda z: log_density(setup.star_model, (data,), {}, {"z": z})[0])(z_draws)
