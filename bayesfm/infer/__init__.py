"""Layer 5: samplers and their verdicts: NUTS (one star and batched), SVI, importance sampling,
convergence diagnostics, trust flags, calibration against reference labels."""
