"""The last touches every InferenceData gets, whichever sampler made it."""

import numpy as np

from bayesfm.bayes.noise_model import NoiseModel
from bayesfm.bayes.star_model import StarData
from bayesfm.tokens.labels import LABEL_INPUTS

__all__ = ["finish"]


def finish(idata, data: StarData, source_id, method, seconds, noise: NoiseModel, key):
    """The label draws go on the survey's scale (``NoiseModel.scatter_labels``, with
    ``key``, at the star's flux noise level), missing tokens become NaN in observed_data,
    provenance goes into the attributes."""
    labels = np.stack([idata.posterior[name].values for name in LABEL_INPUTS], axis=-1)
    scattered = noise.scatter_labels(labels, key, noise.flux_noise_level(data))
    for i, name in enumerate(LABEL_INPUTS):
        idata.posterior[name] = idata.posterior[name].copy(data=scattered[..., i])
    observed = idata.observed_data["obs"]
    idata.observed_data["obs"] = observed.where(np.asarray(data.mask))
    idata.posterior.attrs.update(
        {"source_id": str(source_id), "method": method, "sampling_seconds": float(seconds)}
    )
    return idata
