"""Layer 1: what a star is to bayesfm: the XP grid, the label list, token specs, StarTokens,
the vocabulary that normalises them, and the train/validation/test split."""
