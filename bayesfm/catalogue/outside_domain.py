"""Stars outside the emulator's training domain: the amortized network's labels, not a posterior.

The emulator learned labels -> spectrum where the training labels are (stars with all five
labels, cooler than about 7,000 K: docs/inference.md). A star whose amortized labels lie
outside that domain gets a posterior piled at the prior's edge, narrow and wrong (teff 68%
coverage 0.03 on the test split's stars above 7,000 K), while the amortized network, trained
on such stars (spectra -> labels), covers their survey labels about as often as it says. So
by default (``CatalogueConfig.outside_domain`` "amortized") such a star's row holds the
network's prediction as independent Gaussians, path "amortized", flagged; "posterior"
samples it like any other star.
"""

import numpy as np

__all__ = ["AMORTIZED_NOTE", "record_amortized"]

AMORTIZED_NOTE = "outside the emulator's training domain: labels from the amortized network"


def record_amortized(table, draws, rows, mean, sigma, key) -> None:
    """Rows ``rows`` of ``table`` and ``draws`` [n, S, 5] from the amortized ``mean`` and
    ``sigma`` [len(rows), 5] (physical), as Gaussian draws seeded by ``key``."""
    if len(rows) == 0:
        return
    rng = np.random.default_rng(np.asarray(key))
    unit = rng.standard_normal((len(rows), draws.shape[1], mean.shape[-1]))
    draws[rows] = mean[:, None] + sigma[:, None] * unit
    table.loc[rows, "path"] = "amortized"
    table.loc[rows, "ok"] = False
    table.loc[rows, "flags"] = AMORTIZED_NOTE
