"""The stellar labels: the one list every part of bayesfm uses, with units and valid ranges."""

__all__ = ["LABELS", "EXTINCTION", "LABEL_INPUTS", "NOMINAL_AK_ERROR", "AK_VALID_RANGE"]

# APOGEE's spectroscopic labels and their units.
LABELS = {"teff": "K", "logg": "dex", "fe_h": "dex", "alpha_m": "dex"}
EXTINCTION = {"a_k": "mag"}
# The emulator's inputs, in the order it takes them: the labels, then extinction.
LABEL_INPUTS = (*LABELS, *EXTINCTION)
# APOGEE's ak_targ (RJCE) outside this range is a failed estimate, not an extinction:
# below -0.2 mag it is far beyond the method's noise; above 3 mag a star could not be
# bright enough for Gaia XP (A_G ~ 7 A_K).
AK_VALID_RANGE = (-0.2, 3.0)
NOMINAL_AK_ERROR = 0.05  # RJCE scatter [mag]
