"""Does embedding each value's measurement error help? Validation NLL of two runs at equal steps.

Run (after training both):
  bayesfm train --config configs/train/1_default.json --out runs/default
  bayesfm train --config configs/train/ablation_no_error_embedding.json --out runs/ablation_no_errors
  python validation/compare_error_embedding.py

The two configs differ only in ``embed_errors``; same seed, same batches, same schedule, so
their validation NLLs (2,000 validation stars, fixed tasks) compare step by step.
"""

import argparse
import json
from pathlib import Path

import numpy as np


def _curve(path):
    return {r["step"]: r["val_nll"] for r in map(json.loads, Path(path).read_text().splitlines())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-errors", default="runs/default/metrics.jsonl")
    parser.add_argument("--without-errors", default="runs/ablation_no_errors/metrics.jsonl")
    args = parser.parse_args()
    a, b = _curve(args.with_errors), _curve(args.without_errors)
    steps = sorted(set(a) & set(b))
    print(f"{'step':>6} {'with errors':>12} {'without':>10} {'difference':>11}")
    for step in steps:
        print(f"{step:>6} {a[step]:>12.4f} {b[step]:>10.4f} {a[step] - b[step]:>+11.4f}")
    late = [s for s in steps if s >= 1000]
    diff = np.array([a[s] - b[s] for s in late])
    print(
        f"\nsteps 1000-{max(late)}: mean difference {diff.mean():+.4f} (negative: embedding errors helps), "
        f"with-errors lower at {int((diff < 0).sum())} of {len(diff)} evaluations"
    )
    print(
        f"best so far: with errors {min(a.values()):.4f} (of {max(a)} steps), "
        f"without {min(b.values()):.4f} (of {max(b)} steps)"
    )


if __name__ == "__main__":
    main()
