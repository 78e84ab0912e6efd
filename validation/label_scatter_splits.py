"""Which label splits alpha_m's scatter: the label scatter fitted on in-domain validation
stars (as ``ship_model.py`` fits it: classes of flux noise, Student-t with its candidate
degrees of freedom, the shipped truncation) with every label split at logg 3.5 (shipped), and
with alpha_m's split on fe_h instead, at each of ``--fe-h``; the coverage of APOGEE each gives
there and on the test split's in-domain stars. XP's alpha_m signal weakens with metallicity:
on the report's held-out catalogue, alpha_m's 95% coverage runs from 0.80 (APOGEE fe_h < -1)
to 0.99 (fe_h > 0.1) with one scatter for all.

Run:  python validation/label_scatter_splits.py [--fe-h -1.0 -0.7 -0.4] [--model PATH]
      [--work runs/label_scatter_tails]

The unscattered posteriors are ``label_scatter_tails.py``'s, cached in ``--work`` per model
(about 20 minutes per split on 2 cores the first time). Prints and writes
validation/label_scatter_splits.json.
"""

import argparse
import dataclasses
import json
from pathlib import Path

from label_scatter_tails import print_coverage, scattered_coverage, unscattered_posteriors
from ship_model import SCATTER_CLASSES, SCATTER_DOF, SCATTER_SPLIT

from bayesfm.infer.label_scatter import scatter_from_draws
from bayesfm.infer.setup import StarInference
from bayesfm.tokens.labels import LABEL_INPUTS


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fe-h", type=float, nargs="+", default=[-1.0, -0.7, -0.4])
    parser.add_argument("--model", default=None, help="weights (default: shipped)")
    parser.add_argument("--work", type=Path, default=Path("runs/label_scatter_tails"))
    parser.add_argument("--json", type=Path, default=Path("validation/label_scatter_splits.json"))
    args = parser.parse_args()
    setup = StarInference.default(args.model)
    plain = dataclasses.replace(setup, noise=setup.noise.without_label_scatter())
    posteriors = {s: unscattered_posteriors(plain, s, args.work) for s in ("validation", "test")}
    by_type = (LABEL_INPUTS.index(SCATTER_SPLIT[0]), SCATTER_SPLIT[1])
    splits = {"every label on logg (shipped)": by_type}
    for value in args.fe_h:
        alpha_on_fe_h = (LABEL_INPUTS.index("fe_h"), value)
        splits[f"alpha_m on fe_h {value:g}"] = tuple(
            alpha_on_fe_h if name == "alpha_m" else by_type for name in LABEL_INPUTS
        )
    results = {}
    for name, split in splits.items():
        noise = scatter_from_draws(
            plain.noise,
            *(posteriors["validation"][k] for k in ("draws", "level", "reference", "error")),
            SCATTER_CLASSES,
            split,
            SCATTER_DOF,
        )
        results[name] = {
            "split": split,
            "dof": noise.label_scatter_dof,
            **{s: scattered_coverage(noise, posteriors[s]) for s in posteriors},
        }
        print_coverage(name, results[name], posteriors)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
