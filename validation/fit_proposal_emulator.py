"""Distil the proposal emulator (``bayesfm.model.proposal_emulator``) from the shipped emulator.

Run:  python validation/fit_proposal_emulator.py [--config configs/train/proposal_emulator.json]
      [--out bayesfm/data/proposal_emulator]   (about 8 minutes on this CPU)

Draws label vectors from the shipped label prior, evaluates the emulator there and fits the
MLP, each mean's error counted in its token's median observational error on the train split.
Then prints, for the first 1,000 test stars at their amortized labels, the median and 99th
percentile of |proposal - emulator| / observational error per region.
"""

import argparse
from pathlib import Path

import numpy as np

from bayesfm.common.jsonio import from_json, load_json
from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.model.emulator import emulator_fingerprint
from bayesfm.model.proposal_emulator import (
    ProposalEmulatorConfig,
    as_emulator,
    default_proposal_emulator_path,
    distil_proposal_emulator,
    save_proposal_emulator,
)
from bayesfm.sources.library import first_stars_of_split, load_library
from bayesfm.tokens.split import split_mask

REGIONS = {"BP 400-500": (400, 500), "BP 500-660": (500, 660), "RP 660-1000": (660, 1000)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/train/proposal_emulator.json"))
    parser.add_argument("--out", type=Path, default=default_proposal_emulator_path())
    args = parser.parse_args()
    config = from_json(
        ProposalEmulatorConfig,
        load_json(args.config, "a proposal emulator recipe"),
        str(args.config),
    )
    setup = StarInference.default()
    out_scaling = setup.model.vocabulary.scaling(setup.emulator.outputs)
    tokens = load_library(binning=setup.model.vocabulary.binning).tokens
    train = tokens.take(split_mask(tokens.source_id, "train"))
    errors = train.errors[:, train.index(setup.emulator.outputs)] / out_scaling.scale
    typical_error = np.nanmedian(errors, axis=0)
    layers = distil_proposal_emulator(
        setup.emulator, setup.prior, setup.scaling, out_scaling, typical_error, config
    )
    save_proposal_emulator(args.out, layers, emulator_fingerprint(setup.model), config)
    print(f"wrote {args.out.with_suffix('.safetensors')} and its .json")
    report(setup, as_emulator(layers, setup.emulator, setup.scaling, out_scaling))


def report(setup, proposal):
    """|proposal - emulator| / observational error at the first 1,000 test stars' amortized labels."""
    stars = first_stars_of_split("test", 1000, setup.model.vocabulary.binning)
    prepared = prepare_stars(setup, stars)
    teacher = setup.emulator.batch(prepared.start)[0]
    student = proposal.batch(prepared.start)[0]
    observed = stars.take(prepared.rows)
    error = observed.errors[:, observed.index(setup.emulator.outputs)]
    ratio = np.abs(student - teacher) / error
    for region, (low, high) in REGIONS.items():
        columns = [
            i
            for i, name in enumerate(setup.emulator.outputs)
            if name.startswith("xp_") and low <= float(name[3:]) < high
        ]
        part = ratio[:, columns]
        print(
            f"{region}: |proposal - emulator| / error median {np.nanmedian(part):.3f}, "
            f"99th percentile {np.nanpercentile(part, 99):.3f}"
        )
    colours = [i for i, name in enumerate(setup.emulator.outputs) if not name.startswith("xp_")]
    print(f"colours: median {np.nanmedian(ratio[:, colours]):.3f}")


if __name__ == "__main__":
    main()
