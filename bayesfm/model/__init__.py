"""Layer 3: the foundation model: the transformer, its file format, batches, training, amortized
prediction, and the emulator (labels -> spectrum) that the Bayesian layer calls."""
