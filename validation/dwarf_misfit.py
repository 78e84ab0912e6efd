"""Why dwarfs' posterior logg is low: the likelihood's preference against the prior's.

Run:  python validation/dwarf_misfit.py [--catalogue runs/validation_session/heldout]

Reads the report's held-out catalogue (``validation/report.py`` or
``validation/heldout_posteriors.py``) and, for its test stars with APOGEE logg above 3.5 and
all five labels, prints the median chi-square of the emulator at the posterior medians and
at the APOGEE labels (A_K fitted there without a prior, over ``free_range_of`` the model),
the median log prior at both, and per token the median |obs - mean| / obs error at both.
"""

import argparse
from pathlib import Path

import numpy as np
from astropy.table import Table

from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.infer.trust import fit_chi_square
from bayesfm.model.extinction_fit import fit_free_extinction, free_range_of
from bayesfm.sources.library import load_library
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.split import split_mask

DWARF_LOGG = 3.5


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", type=Path, default=Path("runs/validation_session/heldout"))
    args = parser.parse_args()
    table = Table.read(args.catalogue / "catalogue.fits")
    reference = np.column_stack([np.asarray(table[f"{n}_ref"], float) for n in LABEL_INPUTS])
    medians = np.column_stack([np.asarray(table[f"{n}_median"], float) for n in LABEL_INPUTS])
    dwarfs = np.flatnonzero(
        (reference[:, 1] > DWARF_LOGG)
        & np.isfinite(reference).all(axis=1)
        & np.isfinite(medians).all(axis=1)
    )
    setup = StarInference.default()
    tokens = load_library(binning=setup.model.vocabulary.binning).tokens
    test = tokens.take(np.flatnonzero(split_mask(tokens.source_id, "test")))
    row_of = {s: i for i, s in enumerate(test.source_id.tolist())}
    stars = test.take(np.array([row_of[s] for s in np.asarray(table["source_id"])[dwarfs]]))
    prepared = prepare_stars(setup, stars)
    posterior = medians[dwarfs][prepared.rows].astype(np.float32)
    apogee = reference[dwarfs][prepared.rows].astype(np.float32)
    columns = stars.index(setup.emulator.outputs)
    observed = stars.values[prepared.rows][:, columns]
    errors = stars.errors[prepared.rows][:, columns]
    apogee[:, 4] = fit_free_extinction(
        setup.emulator, apogee[:, :4], observed, errors, True, free_range_of(setup.model)
    ).a_k
    print(f"{len(posterior)} test stars with APOGEE logg > {DWARF_LOGG} and all five labels")
    misfit = {}
    for name, labels in (("posterior medians", posterior), ("APOGEE, A_K fitted", apogee)):
        chi2, dof = fit_chi_square(setup, prepared.data, labels)
        log_prior = np.asarray(setup.prior.log_prob(labels))
        print(
            f"at the {name}: median chi-square {np.median(chi2):.1f} ({np.median(dof):.0f} dof), "
            f"median log prior {np.median(log_prior):.2f}"
        )
        mean, _ = setup.emulator.batch(labels)
        misfit[name] = np.nanmedian(np.abs(observed - mean) / errors, axis=0)
    print("token: median |obs - mean| / error at the posterior medians / at APOGEE")
    for k, token in enumerate(setup.emulator.outputs):
        print(
            f"  {token:8s} {misfit['posterior medians'][k]:.2f} / {misfit['APOGEE, A_K fitted'][k]:.2f}"
        )


if __name__ == "__main__":
    main()
