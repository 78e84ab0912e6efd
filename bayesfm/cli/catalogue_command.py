"""``bayesfm catalogue``: posteriors for many stars, resumable, in-process or on Dask."""

from pathlib import Path

import numpy as np

from bayesfm.cli.inputs import catalogue_stars, json_object, streamed_parts
from bayesfm.common.errors import DataError

__all__ = ["cmd_catalogue"]


def _catalogue_config(args):
    from bayesfm.catalogue.config import CatalogueConfig

    settings = {}
    if args.config:
        if not Path(args.config).is_file():
            raise DataError(f"--config {args.config}: no such file")
        settings = json_object(Path(args.config).read_text(), f"--config {args.config}")
    for name in ("method", "chunk_size", "seed"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    if args.save_draws:
        settings["save_draws"] = True
    return CatalogueConfig.from_dict(settings)


def cmd_catalogue(args) -> None:
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise DataError(f"--out {args.out} is an existing file, not a folder; choose a folder name")
    from bayesfm.infer.setup import StarInference
    from bayesfm.model.foundation_model import FoundationModel

    config = _catalogue_config(args)
    distributed = args.scheduler is not None or bool(args.dask_workers)
    # in-process runs build the setup once here; Dask workers build their own
    setup = None if distributed else StarInference.default(args.model)
    model = FoundationModel.load(args.model) if distributed else setup.model
    parts = streamed_parts(args, model.vocabulary.binning)
    stars = None if parts is not None else catalogue_stars(args, model.vocabulary.binning)
    if stars is not None and args.limit is not None:
        stars = stars.take(np.arange(min(args.limit, len(stars))))
    client = _dask_client(args)
    try:
        summary = _run(args, parts, stars, config, setup, client)
    finally:
        if client is not None:
            client.close()
    print(
        f"{summary['stars']} stars: "
        + ", ".join(f"{n} by {path or 'nothing'}" for path, n in sorted(summary["paths"].items()))
        + f"; {summary['passed']} pass their checks"
    )
    figures = [] if args.no_plots else [_overview_figure(Path(args.out))]
    print(f"results in {args.out}/: " + ", ".join(["catalogue.csv", *figures, _layout(parts)]))


def _overview_figure(out: Path) -> str:
    """Write catalogue.png (its Kiel diagram, medians against any reference labels); its name."""
    import matplotlib

    matplotlib.use("Agg")  # the command writes its figure to a file; no window is needed
    from bayesfm.catalogue_figure import plot_catalogue

    plot_catalogue(out / "catalogue.csv", out / "catalogue.png")
    return "catalogue.png"


def _run(args, parts, stars, config, setup, client) -> dict:
    """Run the catalogue, streamed part by part or whole; its summary."""
    from bayesfm.catalogue.run import run_catalogue
    from bayesfm.catalogue.stream import run_catalogue_parts
    from bayesfm.common.devices import default_workers

    workers = args.workers or default_workers()
    common = dict(client=client, workers=workers, progress=not args.quiet)
    if parts is not None:
        source = args.xp or args.table
        return run_catalogue_parts(
            parts, args.out, config, setup, args.model, input_name=source, **common
        )
    table = run_catalogue(stars, args.out, config, setup, model_path=args.model, **common)
    paths = table["path"].value_counts().to_dict()
    return {"stars": len(table), "paths": paths, "passed": int(table["ok"].sum())}


def _layout(parts) -> str:
    if parts is not None:
        return "parts/<name>/ (one catalogue per input part), run.json"
    return "catalogue.fits, chunks/, run.json"


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
