"""``bayesfm catalogue``: posteriors for many stars, resumable, in-process or on Dask."""

from pathlib import Path

import numpy as np

from bayesfm.cli.inputs import catalogue_stars, json_object
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
    from bayesfm.catalogue.run import run_catalogue
    from bayesfm.infer.setup import StarInference
    from bayesfm.model.foundation_model import FoundationModel

    config = _catalogue_config(args)
    distributed = args.scheduler is not None or bool(args.dask_workers)
    # in-process runs build the setup once here; Dask workers build their own
    setup = None if distributed else StarInference.default(args.model)
    model = FoundationModel.load(args.model) if distributed else setup.model
    stars = catalogue_stars(args, model.vocabulary.binning)
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
