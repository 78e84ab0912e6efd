"""The emulator's A(55)/A(K) per stellar type at several A_K: the report's extinction-curve
computation (``sections/extinction_curve.py``, there at A_K = 0.05 mag only) over a range.

Run:  python validation/extinction_response.py [--model PATH] [--a-k 0 0.05 0.1 0.2 0.3]

A physical response is the same for every type and at every A_K; prints each type's
A(55)/A(K) per A_K and the ratio of the largest to the smallest across types.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from sections.extinction_curve import STELLAR_TYPES

from bayesfm.model.emulator import make_emulator
from bayesfm.model.fitzpatrick import fit_to_fitzpatrick, fitzpatrick_on_tokens, token_centres_nm
from bayesfm.model.foundation_model import FoundationModel


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model path (default: shipped)")
    parser.add_argument("--a-k", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.3])
    args = parser.parse_args()
    model = FoundationModel.load(args.model)
    emulator = make_emulator(model)
    flux = np.array([i for i, name in enumerate(emulator.outputs) if name.startswith("xp_")])
    centres = token_centres_nm([emulator.outputs[i] for i in flux])
    f19 = fitzpatrick_on_tokens(centres, model.vocabulary.binning.width_nm)

    def magnitudes(a_k, labels):
        return -2.5 * jnp.log10(emulator.emulate(jnp.append(labels, a_k))[0][flux])

    slope = jax.jit(jax.jacfwd(magnitudes))
    print("A_K [mag]  " + "  ".join(f"{name:>9}" for name in STELLAR_TYPES) + "  max/min")
    for a_k in args.a_k:
        ratios = []
        for labels in STELLAR_TYPES.values():
            curve = np.asarray(slope(jnp.float32(a_k), jnp.asarray(labels, jnp.float32)))
            ratios.append(fit_to_fitzpatrick(curve, f19)[0])
        row = "  ".join(f"{r:9.2f}" for r in ratios)
        print(f"{a_k:9.2f}  {row}  {max(ratios) / min(ratios):7.3f}")


if __name__ == "__main__":
    main()
