"""Give the shipped model an extinction law (``bayesfm.model.extinction_law``).

Run:  python validation/fit_extinction_law.py --transformer-a-k -0.03
      then  python validation/ship_model.py --likelihood-only
      (the sigma factors, prior and noise model sit on the emulator: refit them)

Fits the law on the train split, with the transformer queried at ``--transformer-a-k`` (on
its own a_k scale; one its training produced: compare several on the validation split with
``validation/choose_extinction_reference.py``), and records it in the shipped
model's info; the weights are unchanged. Prints the law's A(lambda)/A(K) against
Fitzpatrick (2019).
"""

import argparse
from dataclasses import replace

import numpy as np

from bayesfm.model.extinction_fit import default_extinction_path, load_extinction
from bayesfm.model.extinction_law_fit import fit_extinction_law
from bayesfm.model.fitzpatrick import (
    fit_to_fitzpatrick,
    fitzpatrick_on_tokens,
    token_centres_nm,
)
from bayesfm.model.foundation_model import FoundationModel, default_model_path
from bayesfm.sources.library import load_library
from bayesfm.tokens.split import split_mask

SEED = 0


def train_with_cleaned_a_k(tokens):
    """The train split's stars and the shipped model's cleaned A_K for each [N] (NaN: none)."""
    train = tokens.take(split_mask(tokens.source_id, "train"))
    cleaned = load_extinction(default_extinction_path())
    return train, np.array([cleaned.get(s, (np.nan,))[0] for s in train.source_id.tolist()])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transformer-a-k", type=float, required=True)
    args = parser.parse_args()
    model = FoundationModel.load()
    model = replace(model, info={k: v for k, v in model.info.items() if k != "extinction_law"})
    tokens = load_library(binning=model.vocabulary.binning).tokens
    train, cleaned_a_k = train_with_cleaned_a_k(tokens)
    law = fit_extinction_law(
        model, train, cleaned_a_k, args.transformer_a_k, seed=SEED, progress=True
    )
    model = replace(model, info={**model.info, "extinction_law": law.to_info()})
    model.save(default_model_path())
    print(
        f"extinction law: transformer at a_k = {law.transformer_a_k}, i.e. A_K = "
        f"{law.reference_a_k:.3f} mag; A_K = {law.reference_a_k:.3f} + {law.a_k_scale:.3f} x "
        f"(transformer a_k - {law.transformer_a_k})"
    )
    flux = model.vocabulary.names_in_group("xp_bp", "xp_rp")
    f19 = fitzpatrick_on_tokens(token_centres_nm(flux), model.vocabulary.binning.width_nm)
    curve = np.array([law.response[n] for n in flux])
    s = fit_to_fitzpatrick(curve, f19)[0]
    print(
        f"A(55)/A(K) = {s:.2f} (fit to F19's shape: correlation {np.corrcoef(curve, f19)[0, 1]:.4f}); "
        + ", ".join(f"{n} {law.response[n]:.3f}" for n in model.vocabulary.names_in_group("colour"))
    )
    print(f"recorded in {default_model_path()}")


if __name__ == "__main__":
    main()
