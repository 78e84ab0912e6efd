"""``bayesfm data`` and ``bayesfm train``: the training library and the foundation model."""

import numpy as np

__all__ = ["cmd_data", "cmd_train"]


def cmd_data(args) -> None:
    from bayesfm.sources.library import library_path, load_library
    from bayesfm.tokens.split import SPLITS, split_mask

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


def cmd_train(args) -> None:
    from bayesfm.model.train_config import RunConfig
    from bayesfm.model.training import train
    from bayesfm.sources.library import load_library

    run = RunConfig() if args.config is None else RunConfig.from_file(args.config)
    data = load_library(binning=run.binning)
    model = train(run, data.tokens, args.out, progress=not args.quiet)
    print(f"best model ({model.n_parameters} parameters): {args.out}/best.safetensors")
