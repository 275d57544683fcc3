"""mmlego.wsi: the whole-slide image stage.

- :mod:`mmlego.wsi.find_slides`: slide sheets from a folder of slides or a GDC manifest /
  sample sheet (``python -m mmlego.wsi.find_slides``), checked against
  ``config/schemas/slides.schema.yaml``;
- :mod:`mmlego.wsi.slide`: opening slides with OpenSlide, resolution (mpp), level choice, reads;
- :mod:`mmlego.wsi.tissue`: tissue segmentation of a low-resolution image (:class:`TissueParams`,
  named presets);
- :mod:`mmlego.wsi.tiling`: :func:`tile_slide`, tissue tiles at a target resolution -> coords HDF5
  (CLAM/TRIDENT-compatible attributes);
- :mod:`mmlego.wsi.qc`: the tiling QC picture;
- :mod:`mmlego.wsi.encoders`: patch encoder registry (weight-free ``hed_texture`` built in);
- :mod:`mmlego.wsi.torch_encoders`: ResNet50 truncated after layer3, timm / UNI, TorchScript;
- :mod:`mmlego.wsi.loader`: tile batches read by a thread or ``DataLoader`` workers, progress;
- :mod:`mmlego.wsi.features`: :func:`extract_features`, tiles -> features HDF5;
- :mod:`mmlego.wsi.byo`: existing CLAM/TRIDENT feature files -> features HDF5;
- :mod:`mmlego.wsi.bags`: per-patient bags and the per-slide QC table.
"""
