"""Put the shipped model's A_K on ak_targ's scale (``bayesfm.model.a_k_scale``).

Run:  python validation/fit_a_k_scale.py [--stars 1000] [--refit]   (about 25 min; resumes)

Samples the posteriors of ``--stars`` random validation stars that have ak_targ with the
catalogue's default settings (in runs/a_k_scale, resumable), regresses ak_targ on their
posterior medians of a_k, and records the line in the shipped model's info: its emulators,
amortized labels and posteriors then give A_K on ak_targ's scale, and the medians are
unbiased against it. The shipped label prior is mapped onto the same scale exactly (the
noise model has no A_K term), so the posteriors are the same up to that map; the weights
are unchanged. A model that records an extinction law is left alone; one that records a
scale already is left alone too unless ``--refit``: then the line is fitted on its A_K and
follows its scale (new weights or a new correction on a transformer whose scale was fitted).
"""

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from bayesfm.bayes.priors import GaussianMixturePrior, default_prior_path
from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.catalogue.run import run_catalogue
from bayesfm.common.errors import DataError
from bayesfm.infer.setup import StarInference
from bayesfm.model.a_k_scale import AKScale, calibrate_scale
from bayesfm.model.emulator import a_k_scale_of
from bayesfm.model.foundation_model import default_model_path
from bayesfm.sources.library import load_library
from bayesfm.tokens.split import split_mask

SEED = 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("runs/a_k_scale"))
    parser.add_argument(
        "--refit", action="store_true", help="refit the scale of a model that records one"
    )
    args = parser.parse_args()
    setup = StarInference.default()
    current = a_k_scale_of(setup.model)
    if current is not None and not args.refit:
        raise DataError(
            f"{default_model_path()} already gives A_K on ak_targ's scale ({current}), and "
            "its prior is on that scale: nothing to do (--refit fits it again)"
        )
    tokens = load_library(binning=setup.model.vocabulary.binning).tokens
    with_ak_targ = split_mask(tokens.source_id, "validation") & np.isfinite(tokens.column("a_k")[0])
    rows = np.random.default_rng(SEED).permutation(np.flatnonzero(with_ak_targ))[: args.stars]
    stars = tokens.take(np.sort(rows))
    table = run_catalogue(stars, args.out, CatalogueConfig(outside_domain="posterior"), setup)
    slope, intercept = calibrate_scale(table["a_k_median"], None, stars.column("a_k")[0])
    line = AKScale.from_info({"slope": slope, "intercept": intercept})
    scale = line if current is None else current.then(line)
    prior = GaussianMixturePrior.load().mapped("a_k", line.slope, line.intercept)
    model = replace(setup.model, info={**setup.model.info, "a_k_scale": scale.to_info()})
    model.save(default_model_path())
    prior.save(default_prior_path())
    print(
        f"A_K = {scale.intercept:.4f} + {scale.slope:.4f} x the transformer's a_k "
        f"({len(stars)} validation stars' posterior medians): recorded in "
        f"{default_model_path()}; prior mapped in {default_prior_path()}"
    )


if __name__ == "__main__":
    main()
