"""mmlego.wsi: the whole-slide image stage.

- :mod:`mmlego.wsi.slide`: opening slides with OpenSlide, resolution (mpp), level choice, reads;
- :mod:`mmlego.wsi.tissue`: tissue segmentation of a low-resolution image (:class:`TissueParams`);
- :mod:`mmlego.wsi.tiling`: :func:`tile_slide`, tissue tiles at a target resolution -> coords HDF5;
- :mod:`mmlego.wsi.qc`: the tiling QC picture;
- :mod:`mmlego.wsi.encoders`: patch encoder registry (weight-free ``hed_texture`` built in);
- :mod:`mmlego.wsi.features`: :func:`extract_features`, tiles -> features HDF5.
"""
