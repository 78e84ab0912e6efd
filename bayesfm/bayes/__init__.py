"""Layer 4: the pure one-star Bayesian core: label prior, likelihood and its noise model, the
NumPyro star model and simulation from it."""
