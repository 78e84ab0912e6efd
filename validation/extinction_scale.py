"""Is the emulator's extinction on the right scale? Three measurements on the train split.

Run:  python validation/extinction_scale.py [--model PATH] [--extinction FILE.npz]
      (default: the shipped model and its cleaned A_K; for a training run, its
      best.safetensors and best_extinction.npz)

1. The cleaned A_K against the raw ak_targ, per stellar class: ak_targ is an unbiased
   measurement of the true A_K, so the regression of ak_targ on cleaned values of the right
   scale has slope 1, and their spread is below ak_targ's (its noise is gone).
2. The data alone: in a narrow label box per stellar type, each flux token's magnitude
   regressed on A_K (raw, cleaned, and cleaned then anchored to ak_targ's scale) and the
   four labels, over the stars that have all three; the slopes, fitted as s x A(lambda)/A(55) of Fitzpatrick (2019) + c, give
   A(55)/A(K) = s and E(BP-RP)/A(K).
3. The emulator's own A(55)/A(K), d(-2.5 log10 flux)/d a_k fitted the same way, at several
   a_k: a physical response is the same at every a_k and for every type.
"""

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from sections.extinction_curve import STELLAR_TYPES  # noqa: E402

from bayesfm.model.emulator import make_emulator  # noqa: E402
from bayesfm.model.extinction_anchor import ExtinctionFit, anchor_to_label  # noqa: E402
from bayesfm.model.extinction_fit import default_extinction_path  # noqa: E402
from bayesfm.model.fitzpatrick import (  # noqa: E402
    fit_to_fitzpatrick,
    fitzpatrick_on_tokens,
    token_centres_nm,
)
from bayesfm.model.foundation_model import FoundationModel  # noqa: E402
from bayesfm.sources.library import load_library  # noqa: E402
from bayesfm.tokens.labels import LABEL_INPUTS  # noqa: E402
from bayesfm.tokens.split import split_mask  # noqa: E402

CLASSES = {  # name -> (logg range, teff range)
    "giants, teff < 4700 K": ((-1, 3.5), (0, 4700)),
    "giants, teff >= 4700 K": ((-1, 3.5), (4700, 1e5)),
    "dwarfs, teff < 5500 K": ((3.5, 9), (0, 5500)),
    "dwarfs, teff >= 5500 K": ((3.5, 9), (5500, 1e5)),
}
EMULATOR_A_K = (0.0, 0.05, 0.1, 0.2, 0.4)  # [mag] where the emulator's slope is taken


def label_scale(labels, raw, cleaned):
    print("1. ak_targ = b x cleaned A_K + a, per class (b = 1, a = 0 on the right scale)")
    for name, ((g0, g1), (t0, t1)) in CLASSES.items():
        rows = (labels[:, 1] >= g0) & (labels[:, 1] < g1) & (labels[:, 0] >= t0)
        rows &= (labels[:, 0] < t1) & np.isfinite(raw) & np.isfinite(cleaned)
        b, a = np.polyfit(cleaned[rows], raw[rows], 1)
        print(
            f"   {name:<24} {rows.sum():>6} stars  b = {b:.3f}  a = {a:+.3f} mag  "
            f"sd cleaned {cleaned[rows].std():.3f}, ak_targ {raw[rows].std():.3f} mag"
        )


def data_slopes(labels, magnitudes, f19, extinctions: dict):
    print("2. From the data: A(55)/A(K) [E(BP-RP)/A(K)] per type, by the A_K regressed on")
    print(f"   {'type':<10}{'stars':>7}" + "".join(f"{name:>22}" for name in extinctions))
    for name, centre in STELLAR_TYPES.items():
        offset = labels[:, :4] - np.asarray(centre)
        box = (np.abs(offset[:, 0]) < 250) & (np.abs(offset[:, 1]) < 0.4)
        box &= (np.abs(offset[:, 2]) < 0.3) & np.isfinite(magnitudes).all(axis=1)
        box &= np.all([np.isfinite(a_k) for a_k in extinctions.values()], axis=0)
        cells = []
        for a_k in extinctions.values():
            design = np.column_stack([np.ones(box.sum()), a_k[box], offset[box]])
            coef, *_ = np.linalg.lstsq(design, magnitudes[box], rcond=None)
            cells.append(f"{fit_to_fitzpatrick(coef[1, :-1], f19)[0]:.2f} [{coef[1, -1]:.2f}]")
        print(f"   {name:<10}{box.sum():>7}" + "".join(f"{c:>22}" for c in cells))


def emulator_slopes(model, f19):
    emulator = make_emulator(model)
    flux = np.array([i for i, n in enumerate(emulator.outputs) if n.startswith("xp_")])

    def magnitudes(a_k, labels):
        return -2.5 * jnp.log10(emulator.emulate(jnp.append(labels, a_k))[0][flux])

    slope = jax.jit(jax.jacfwd(magnitudes))
    print(f"3. The emulator's A(55)/A(K) at a_k = {', '.join(map(str, EMULATOR_A_K))} mag")
    for name, labels in STELLAR_TYPES.items():
        at = jnp.asarray(labels, jnp.float32)
        row = [
            fit_to_fitzpatrick(np.asarray(slope(jnp.float32(a), at)), f19)[0] for a in EMULATOR_A_K
        ]
        print(f"   {name:<10}" + "".join(f"{s:>8.2f}" for s in row))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="weights (default: the shipped model)")
    parser.add_argument("--extinction", default=None, help="cleaned A_K (.npz)")
    args = parser.parse_args()
    model = FoundationModel.load(args.model)
    tokens = load_library(binning=model.vocabulary.binning).tokens
    train = tokens.take(split_mask(tokens.source_id, "train"))
    with np.load(args.extinction or default_extinction_path(), allow_pickle=False) as saved:
        by_id = dict(zip(saved["source_id"].tolist(), saved["a_k"].tolist(), strict=True))
    cleaned = np.array([by_id.get(s, np.nan) for s in train.source_id.tolist()])
    labels = train.values[:, train.index(LABEL_INPUTS)].astype(float)
    raw = labels[:, 4]
    anchored = anchor_to_label(ExtinctionFit(cleaned, np.zeros_like(cleaned)), labels, raw).a_k
    flux_names = model.vocabulary.names_in_group("xp_bp", "xp_rp")
    with np.errstate(all="ignore"):
        magnitudes = np.column_stack(
            [-2.5 * np.log10(train.values[:, train.index(flux_names)]), train.column("bp_rp")[0]]
        )
    f19 = fitzpatrick_on_tokens(token_centres_nm(flux_names), model.vocabulary.binning.width_nm)
    label_scale(labels, raw, cleaned)
    extinctions = {"ak_targ": raw, "cleaned": cleaned, "cleaned, anchored": anchored}
    data_slopes(labels, magnitudes, f19, extinctions)
    emulator_slopes(model, f19)


if __name__ == "__main__":
    main()
