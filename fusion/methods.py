"""Import every fuser module so that each method registers itself (the registry of sermm.estimator)."""

from sermm.fusion import interp, lda_plda, logreg, vote  # noqa: F401
