"""Install a trained model as the package default, with its learned prior and noise model.

Run:  python validation/ship_model.py --run runs/default

Writes into bayesfm/data/:
- foundation_model.safetensors / .json: the run's best (validation-split) weights;
- label_prior.json: a Gaussian mixture over (teff, logg, fe_h, alpha_m, a_k) fitted on the
  train split's stars that have all five;
- noise_model.json: the correlated-residual noise model fitted on validation stars.
"""

import argparse
from pathlib import Path

import numpy as np

from bayesfm.emulator import LABEL_INPUTS, make_emulator
from bayesfm.foundation_model import FoundationModel, default_model_path
from bayesfm.library import load_library
from bayesfm.likelihood import default_noise_path, fit_noise_model
from bayesfm.priors import default_prior_path, fit_gaussian_mixture
from bayesfm.split import split_mask

PRIOR_COMPONENTS = 16
SEED = 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/default", help="training output folder")
    args = parser.parse_args()

    model = FoundationModel.load(Path(args.run) / "best")
    tokens = load_library(binning=model.vocabulary.binning).tokens
    inputs = tokens.values[:, tokens.index(LABEL_INPUTS)]
    complete = np.isfinite(inputs).all(axis=1)

    train = split_mask(tokens.source_id, "train") & complete
    prior = fit_gaussian_mixture(inputs[train], n_components=PRIOR_COMPONENTS, seed=SEED)
    prior.save(default_prior_path())
    print(f"prior: {PRIOR_COMPONENTS}-component mixture from {train.sum()} train stars")

    validation = split_mask(tokens.source_id, "validation") & complete
    emulator = make_emulator(model)
    columns = tokens.index(emulator.outputs)
    noise = fit_noise_model(
        emulator,
        inputs[validation],
        tokens.values[validation][:, columns],
        tokens.errors[validation][:, columns],
    )
    noise.save(default_noise_path())
    off_diagonal = noise.correlation[~np.eye(len(noise.names), dtype=bool)]
    print(
        f"noise model from {validation.sum()} validation stars: error scales "
        f"{noise.error_scale.min():.2f}-{noise.error_scale.max():.2f}, median |correlation| "
        f"{np.median(np.abs(off_diagonal)):.2f}"
    )

    model.save(default_model_path())
    size = default_model_path().stat().st_size
    print(f"model: {model.n_parameters} parameters, {size / 1e6:.2f} MB -> {default_model_path()}")


if __name__ == "__main__":
    main()
