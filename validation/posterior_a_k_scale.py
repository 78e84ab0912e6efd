"""How far a catalogue's A_K posteriors sit from ak_targ, as they are and mapped onto its scale.

Run:  python validation/posterior_a_k_scale.py CATALOGUE_DIR [--reference 0.039]
      [--scale 0.612] [--transformer-a-k -0.03]

Reads CATALOGUE_DIR/catalogue.fits (e.g. runs/validation_session_first1000/heldout from
``validation/heldout_posteriors.py --stars 1000``) and prints, for the posterior a_k as
sampled (the transformer's a_k scale) and mapped linearly onto ak_targ's scale by
A_K = reference + scale x (a_k - transformer_a_k) (the extinction law's calibration,
``validation/fit_extinction_law.py``): the robust sigma and median of posterior median -
ak_targ, and the fraction of stars whose ak_targ lies within 1 sigma (posterior half
16-84% width and ak_targ's error in quadrature); then the line ak_targ = a + b x median.
The "mapped" line is for a catalogue of a model without an ``a_k_scale``: the shipped model's
posteriors are on ak_targ's scale already (their "as sampled" line is the one to read).
"""

import argparse
from pathlib import Path

import numpy as np
from astropy.table import Table

from bayesfm.common.metrics import robust_sigma


def summary(median, low, high, reference, error) -> str:
    z = (median - reference) / np.sqrt((0.5 * (high - low)) ** 2 + error**2)
    offset = median - reference
    return (
        f"robust sigma {robust_sigma(offset):.4f} mag, median {np.median(offset):+.4f} mag, "
        f"within 1 sigma {np.mean(np.abs(z) < 1):.3f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("catalogue", type=Path)
    parser.add_argument("--reference", type=float, default=0.039)
    parser.add_argument("--scale", type=float, default=0.612)
    parser.add_argument("--transformer-a-k", type=float, default=-0.03)
    args = parser.parse_args()
    table = Table.read(args.catalogue / "catalogue.fits")
    columns = ("a_k_median", "a_k_q16", "a_k_q84", "a_k_ref", "a_k_ref_err")
    median, low, high, reference, error = (np.asarray(table[c], float) for c in columns)
    both = np.isfinite(median) & np.isfinite(reference)
    median, low, high, reference, error = (a[both] for a in (median, low, high, reference, error))

    def mapped(a_k):
        return args.reference + args.scale * (a_k - args.transformer_a_k)

    print(f"{both.sum()} stars with a posterior and ak_targ")
    print("as sampled:  " + summary(median, low, high, reference, error))
    print("mapped:      " + summary(mapped(median), mapped(low), mapped(high), reference, error))
    slope, intercept = np.polyfit(median, reference, 1)
    print(f"ak_targ = {intercept:.3f} + {slope:.3f} x posterior median (as sampled)")


if __name__ == "__main__":
    main()
