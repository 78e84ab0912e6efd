"""Where a star's mode searches start besides its amortized prediction (``bayesfm.infer.mode``).

XP often leaves logg ambiguous between the giant branch and the main sequence: one search
starts from the amortized labels with logg moved to the other side. Modes behind a ridge of
low density, in the teff / metallicity / extinction degeneracy of low-resolution spectra, are
scouted for: -log p at points scattered widely around the amortized prediction (the same
offsets for every star), the densest far enough from the other starts become starts.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.util import log_density

from bayesfm.common.devices import bucket_size, in_star_blocks
from bayesfm.common.stored_programs import stored_jit
from bayesfm.tokens.labels import LABEL_INPUTS

__all__ = ["logg_starts", "scouted_starts", "neg_log_density"]

_LOGG = LABEL_INPUTS.index("logg")
_SCOUT_SEED = 0  # the scouting offsets: the same for every star and run
_SCOUT_EXCLUSION = 1.5  # scouted starts lie this many amortized sigma from the other starts


def logg_starts(setup, z_mean, logg_values, farthest_only):
    """Mode-search starts, each [n, 5]: the amortized prediction with logg set to each of
    ``logg_values`` (physical), or with ``farthest_only`` to the one farthest from its own
    logg per star (the other side of the giant/dwarf ambiguity)."""
    if not logg_values:
        return []
    physical = np.asarray(setup.scaling.physical(z_mean), np.float32)
    values = np.asarray(logg_values, np.float32)
    if farthest_only:
        distance = np.abs(values[None] - physical[:, _LOGG, None])
        values = [values[distance.argmax(axis=1)]]
    starts = []
    for logg in values:
        moved = physical.copy()
        moved[:, _LOGG] = logg
        starts.append(np.asarray(setup.scaling.normalise(moved), np.float32))
    return starts


def scouted_starts(setup, data, z_mean, z_sigma, config):
    """``config.scout_starts`` starts [n, 5] from ``config.scout_draws`` points around each
    star's amortized prediction (its sigma widened ``config.scout_inflation`` times; the same
    fixed offsets for every star): one after another, the point of lowest -log p that lies
    more than ``_SCOUT_EXCLUSION`` amortized sigma from the amortized start and from the
    starts already chosen. A mode the amortized start's search cannot reach across a ridge
    of low density is often found from one of them."""
    n, dim = np.shape(z_mean)
    z_sigma = np.asarray(z_sigma, np.float32)
    offsets = config.scout_inflation * np.random.default_rng(_SCOUT_SEED).standard_normal(
        (config.scout_draws, dim)
    )
    points = (np.asarray(z_mean)[:, None] + z_sigma[:, None] * offsets[None]).astype(np.float32)
    # all stars at once: a block of 16 stars scouted 27% slower per star than one of 64
    values = in_star_blocks(_compiled_scout(setup), (points, data), n, bucket_size(n))
    values = np.where(np.isfinite(values), values, np.inf)
    allowed = np.broadcast_to(np.linalg.norm(offsets, axis=1) > _SCOUT_EXCLUSION, values.shape)
    starts = []
    for _ in range(config.scout_starts):
        chosen = points[np.arange(n), np.argmin(np.where(allowed, values, np.inf), axis=1)]
        starts.append(chosen)
        distance = np.linalg.norm((points - chosen[:, None]) / z_sigma[:, None], axis=2)
        allowed = allowed & (distance > _SCOUT_EXCLUSION)
    return starts


@functools.lru_cache(maxsize=4)
def _compiled_scout(setup):
    """-log p of z [n, S, 5] for n stars (the draws one after another, the stars batched)."""
    neg_log_p = functools.partial(neg_log_density, setup.star_model)

    def all_stars(points, data):
        per_draw = jax.vmap(neg_log_p)
        return jax.lax.map(lambda z: per_draw(z, data), jnp.swapaxes(points, 0, 1)).T

    return stored_jit(all_stars, "scout_densities", setup.program_key)


def neg_log_density(model, z, data):
    """-log p of one star's normalised labels z [5] (the density of z itself: no Jacobian)."""
    return -log_density(model, (data,), {}, {"z": z})[0]
