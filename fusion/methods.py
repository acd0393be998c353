"""Import every fuser module so that each method registers itself (see sermm.fusion.base.REGISTRY)."""

from sermm.fusion import interp, lda_plda, logreg, vote  # noqa: F401
