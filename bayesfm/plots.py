"""Figures of one star's posterior: corner, trace, and the posterior-predictive spectrum."""

import arviz as az
import matplotlib.pyplot as plt
import numpy as np

from bayesfm.plot_style import plain_plotting
from bayesfm.tokens.labels import LABEL_INPUTS

__all__ = ["plot_corner", "plot_trace", "plot_spectrum"]


def plot_corner(idata, path, reference=None, keep: float = 0.998) -> None:
    """Pair plot of the labels' draws inside every label's central ``keep`` interval (the
    label scatter's heavy tails would otherwise stretch the density grid until its contours
    vanish); ``reference``: dict of e.g. APOGEE values to mark."""
    draws = {name: idata.posterior[name].values.ravel() for name in LABEL_INPUTS}
    bounds = {name: np.quantile(v, [(1 - keep) / 2, (1 + keep) / 2]) for name, v in draws.items()}
    inside = np.all([(v >= bounds[n][0]) & (v <= bounds[n][1]) for n, v in draws.items()], axis=0)
    with plain_plotting():
        axes = az.plot_pair(
            {name: v[inside][None, :] for name, v in draws.items()},
            var_names=list(LABEL_INPUTS),
            kind="kde",
            marginals=True,
            reference_values={k: v for k, v in (reference or {}).items() if np.isfinite(v)},
            figsize=(9, 9),
        )
        fig = np.ravel(axes)[0].figure
        source = idata.posterior.attrs.get("source_id", "")
        fig.suptitle(f"Gaia DR3 {source}: posterior (central {100 * keep:.1f}% of each label)")
        fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_trace(idata, path) -> None:
    with plain_plotting():
        axes = az.plot_trace(idata, var_names=list(LABEL_INPUTS), compact=True, figsize=(10, 9))
        fig = np.ravel(axes)[0].figure
        fig.tight_layout()
        fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_spectrum(idata, path) -> None:
    """Observed XP flux tokens and colours against the posterior predictive, with residuals."""
    with plain_plotting():
        fig = _spectrum_figure(idata)
        fig.savefig(path, dpi=90)
    plt.close(fig)


def _spectrum_figure(idata):
    tokens = [str(t) for t in idata.posterior_predictive["token"].values]
    draws = idata.posterior_predictive["obs"].values.reshape(-1, len(tokens))
    observed = idata.observed_data["obs"].values
    q16, q50, q84 = np.percentile(draws, [16, 50, 84], axis=0)
    xp = np.array([t.startswith("xp_") for t in tokens])
    wavelength = np.array([float(t[3:]) for t in np.array(tokens)[xp]])
    spread = (q84 - q16) / 2
    fig, (top, bottom) = plt.subplots(
        2, 2, figsize=(11, 6), gridspec_kw={"height_ratios": [3, 1], "width_ratios": [4, 1]}
    )
    ax, cax = top
    bottom[0].sharex(ax)
    ax.fill_between(
        wavelength, q16[xp], q84[xp], color="C1", alpha=0.35, label="posterior predictive 16-84%"
    )
    ax.plot(wavelength, q50[xp], color="C1")
    has = np.isfinite(observed)
    ax.plot(
        wavelength[has[xp]], observed[xp][has[xp]], "o", color="k", ms=3, label="observed Gaia XP"
    )
    ax.set_ylabel("flux / median RP flux")
    ax.legend(loc="best", fontsize=8)
    ax.set_title(
        f"Gaia DR3 {idata.posterior.attrs.get('source_id', '')} ({idata.posterior.attrs.get('method', '')})"
    )
    resid = (observed - q50) / spread
    bottom[0].axhline(0, color="0.5", lw=0.8)
    bottom[0].plot(wavelength, resid[xp], "o", color="k", ms=3)
    bottom[0].set_ylabel("(obs - pred) / sigma")
    bottom[0].set_xlabel("wavelength [nm]")
    colour_names = np.array(tokens)[~xp]
    y = np.arange(len(colour_names))
    cax.errorbar(q50[~xp], y, xerr=spread[~xp], fmt="o", color="C1", label="predicted")
    cax.plot(observed[~xp], y, "kx", label="observed")
    cax.set_yticks(y, colour_names)
    cax.set_xlabel("colour [mag]")
    bottom[1].axis("off")
    fig.tight_layout()
    return fig
