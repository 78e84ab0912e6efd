"""Which a_k context should the extinction law query the transformer at? Measured on validation stars.

Run:  python validation/choose_extinction_reference.py [--candidates -0.1 -0.05 -0.03 0 0.1]
      [--stars 1500]

For each candidate a_k (on the transformer's scale), fits the law on the train split
(``bayesfm.model.extinction_law_fit``) and measures, on the first ``--stars`` validation
stars with all four APOGEE labels and ak_targ, the emulator fidelity with A_K fitted per star
(``benchmarks/emulator_fidelity.py``'s table: median |obs - mean| / obs error per region and
the BP-RP robust sigma) and the robust sigma of the fitted A_K against ak_targ; the
transformer's own a_k response (no law) is the first row. No row uses sigma factors. The choice is then made by hand
and passed to ``validation/fit_extinction_law.py``.
"""

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).parent))
from emulator_fidelity import REGIONS_NM, fidelity  # noqa: E402
from fit_extinction_law import train_with_cleaned_a_k  # noqa: E402

from bayesfm.common.metrics import robust_sigma  # noqa: E402
from bayesfm.model.emulator import make_emulator  # noqa: E402
from bayesfm.model.extinction_fit import fit_free_extinction  # noqa: E402
from bayesfm.model.extinction_law_fit import fit_extinction_law  # noqa: E402
from bayesfm.model.foundation_model import FoundationModel  # noqa: E402
from bayesfm.sources.library import load_library  # noqa: E402
from bayesfm.tokens.labels import LABEL_INPUTS  # noqa: E402
from bayesfm.tokens.split import split_mask  # noqa: E402


def measure(emulator, inputs, observed, errors) -> str:
    fitted = fit_free_extinction(emulator, inputs[:, :4], observed, errors)
    with_fit = np.column_stack([inputs[:, :4], fitted.a_k]).astype(np.float32)
    row = fidelity(emulator, with_fit, observed, errors)
    cells = "".join(f"{row[r]['over_obs_error']:>12.2f}" for r in REGIONS_NM)
    spread = robust_sigma(fitted.a_k - inputs[:, 4])
    return f"{cells}{row['bp_rp_robust_sigma_mag']:>8.4f}{spread:>10.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--candidates", type=float, nargs="+", default=[-0.1, -0.05, -0.03, 0.0, 0.1]
    )
    parser.add_argument("--stars", type=int, default=1500)
    args = parser.parse_args()
    model = FoundationModel.load()
    # every row on the transformer's a_k scale and without sigma factors (the shipped ones
    # were fitted for one likelihood)
    dropped = ("extinction_law", "a_k_scale", "emulator_sigma_factors")
    model = replace(model, info={k: v for k, v in model.info.items() if k not in dropped})
    tokens = load_library(binning=model.vocabulary.binning).tokens
    train, cleaned_a_k = train_with_cleaned_a_k(tokens)

    raw = make_emulator(model)
    validation = tokens.take(split_mask(tokens.source_id, "validation"))
    inputs = validation.values[:, validation.index(LABEL_INPUTS)]
    observed = validation.values[:, validation.index(raw.outputs)]
    rows = np.flatnonzero(np.isfinite(inputs).all(axis=1) & np.isfinite(observed).any(axis=1))
    rows = rows[: args.stars]
    inputs, observed = inputs[rows].astype(np.float32), observed[rows]
    errors = validation.errors[rows][:, validation.index(raw.outputs)]

    print(f"{len(rows)} validation stars, A_K fitted per star; |obs - mean| / obs error:")
    print(f"{'emulator':<24}" + "".join(f"{r:>12}" for r in REGIONS_NM) + "   BP-RP  A_K-ak_targ")
    print(f"{'no law':<24}" + measure(raw, inputs, observed, errors), flush=True)
    for a_k in args.candidates:
        law = fit_extinction_law(model, train, cleaned_a_k, a_k)
        with_law = replace(model, info={**model.info, "extinction_law": law.to_info()})
        row = measure(make_emulator(with_law), inputs, observed, errors)
        print(f"{f'law at a_k = {a_k:+.2f}':<24}" + row, flush=True)


if __name__ == "__main__":
    main()
