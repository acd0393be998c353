"""Fusion: combine the score files of several systems into one (``sermm-fuse``).

Fusers are N-input estimators (:mod:`sermm.estimator`: ``fit``, ``transform``/``predict_proba``/
``predict``, ``get_params``, ``save``/``to_dict``): :class:`~sermm.fusion.interp.MeanFuser`,
:class:`~sermm.fusion.interp.InterpFuser`, :class:`~sermm.fusion.logreg.LogRegFuser`,
:class:`~sermm.fusion.lda_plda.LDAFuser`, :class:`~sermm.fusion.lda_plda.PLDAFuser` and
:class:`~sermm.fusion.vote.VoteFuser`; :func:`sermm.estimator.load` rebuilds any of them from a
model file.
"""
