"""The last touches every InferenceData gets, whichever sampler made it."""

import numpy as np

from bayesfm.bayes.star_model import StarData

__all__ = ["finish"]


def finish(idata, data: StarData, source_id, method, seconds):
    """Missing tokens become NaN in observed_data; provenance goes into the attributes."""
    observed = idata.observed_data["obs"]
    idata.observed_data["obs"] = observed.where(np.asarray(data.mask))
    idata.posterior.attrs.update(
        {"source_id": str(source_id), "method": method, "sampling_seconds": float(seconds)}
    )
    return idata
