"""mmlego.omics: fold-safe preprocessing of omics tables (RNA-seq, CNV, ...).

:mod:`mmlego.omics.preprocess`: :class:`OmicsParams`, :func:`fit_transform_fold` (statistics fitted
on a fold's training patients only, applied to every patient), :class:`OmicsFold` (``save`` to
``.npz``) and :func:`load_omics_fold`.
"""
