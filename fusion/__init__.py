"""Fusion: combine the score files of several systems into one (``sermm-fuse``).

Fusers are small scikit-learn style estimators (``fit``, ``fuse``/``predict_proba``/``predict``,
``get_params``, ``to_dict``/``from_dict``): :class:`~sermm.fusion.interp.MeanFuser`,
:class:`~sermm.fusion.interp.InterpFuser`, :class:`~sermm.fusion.logreg.LogRegFuser`,
:class:`~sermm.fusion.lda_plda.LDAFuser`, :class:`~sermm.fusion.lda_plda.PLDAFuser` and
:class:`~sermm.fusion.vote.VoteFuser`; :func:`~sermm.fusion.base.fuser_from_dict` rebuilds any
of them from a model file.
"""
