"""Patch encoders: a registry of callables that turn RGB tiles into feature vectors.

An encoder is any object with

- ``name: str`` and ``dim: int``,
- ``__call__(tiles) -> features``: ``tiles`` (n, h, w, 3) uint8 RGB, returns (n, dim) float32,

and optionally ``feature_names: tuple[str, ...]`` (length ``dim``). :func:`get_encoder` builds one
by name from the factories registered with :func:`register_encoder`.

The built-in ``hed_texture`` encoder needs no weights: hand-crafted stain and texture statistics
(:class:`HedTextureEncoder`, 36 features, listed in :data:`HED_FEATURES`).

Extension point for deep encoders (ResNet50, timm, UNI, ... from local checkpoints; a later
issue): write a class with the attributes above whose ``__init__`` takes the checkpoint path and
device as keyword arguments and whose ``__call__`` normalises the uint8 tiles, runs the network
under ``torch.inference_mode()`` and returns numpy float32; then
``register_encoder("resnet50_trunc", ResNet50Encoder)``. Import torch inside that class's module
so that the weight-free path does not need it. Nothing here downloads weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy import ndimage


@runtime_checkable
class Encoder(Protocol):
    """What the feature stage needs from a patch encoder."""

    name: str
    dim: int

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        """(n, h, w, 3) uint8 RGB tiles -> (n, dim) float32 features."""
        ...


EncoderFactory = Callable[..., Encoder]
_REGISTRY: dict[str, EncoderFactory] = {}


def register_encoder(name: str, factory: EncoderFactory, *, overwrite: bool = False) -> None:
    """Make ``get_encoder(name, **kwargs)`` return ``factory(**kwargs)``."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"encoder {name!r} is already registered")
    _REGISTRY[name] = factory


def available_encoders() -> list[str]:
    """Names accepted by :func:`get_encoder`, sorted."""
    return sorted(_REGISTRY)


def get_encoder(name: str, **kwargs: Any) -> Encoder:
    """Build the encoder registered as ``name`` with keyword options ``kwargs``."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown patch encoder {name!r}; available: {', '.join(available_encoders())}"
        ) from None
    enc = factory(**kwargs)
    if not isinstance(enc, Encoder):
        raise TypeError(f"encoder factory {name!r} returned {type(enc).__name__}, not an Encoder")
    return enc


# --- colour deconvolution -------------------------------------------------------------------

#: Ruifrok & Johnston (2001) optical-density vectors of hematoxylin, eosin and DAB (rows, RGB),
#: normalised to unit length; the same matrix as scikit-image's ``rgb_from_hed``.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
RGB_FROM_HED = RGB_FROM_HED / np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)


def optical_density(tiles: np.ndarray) -> np.ndarray:
    """Optical density ``-log10((I + 1) / 256)`` of uint8 RGB, float32 of the same shape."""
    return (-np.log10((tiles.astype(np.float32) + 1.0) / 256.0)).astype(np.float32)


def rgb_to_hed(tiles: np.ndarray) -> np.ndarray:
    """Colour deconvolution of (..., 3) uint8 RGB into H, E, D concentrations (..., 3) float32.

    Concentrations are optical densities along the stain vectors (``OD @ HED_FROM_RGB``), negative
    values clipped to 0. Glass is about 0; strongly stained nuclei have H above ~0.5.
    """
    od = optical_density(tiles)
    return np.maximum(od @ HED_FROM_RGB.astype(np.float32), 0.0)


# --- the weight-free encoder ----------------------------------------------------------------

HED_FEATURES: tuple[str, ...] = (
    *(f"rgb_mean_{c}" for c in "rgb"),
    *(f"rgb_std_{c}" for c in "rgb"),
    *(f"{s}_{q}" for s in ("h", "e") for q in ("mean", "std", "q10", "q50", "q90")),
    "d_mean",
    "d_std",
    "od_sum_mean",
    "tissue_frac",
    "h_pos_frac",
    "h_strong_frac",
    "e_pos_frac",
    "h_over_e",
    "blob_density",
    "blob_area_mean",
    "blob_area_std",
    "blob_log_area_mean",
    "blob_area_max",
    "granulo_r1",
    "granulo_r2",
    "granulo_r3",
    "grad_mean",
    "grad_std",
    "lap_abs_mean",
    "h_grad_mean",
)


class HedTextureEncoder:
    """Weight-free stain and texture features of H&E tiles (36 dims, :data:`HED_FEATURES`).

    Per tile (vectorised over the batch):

    - ``rgb_mean_*``, ``rgb_std_*``: colour mean and standard deviation (/255);
    - ``h_*``, ``e_*``: hematoxylin and eosin concentration (:func:`rgb_to_hed`) mean, std and
      10/50/90 % quantiles; ``d_mean``, ``d_std``: the residual (DAB) channel;
    - ``od_sum_mean``: mean total optical density; ``tissue_frac``: fraction of pixels with total
      OD above ``tissue_od`` (not glass);
    - ``h_pos_frac``, ``h_strong_frac``: fraction of tissue pixels with H above ``h_threshold``
      (nuclei density proxy) and above 1.5 times that; ``e_pos_frac``: E above ``e_threshold``;
      ``h_over_e``: mean H over mean E;
    - ``blob_*``: 8-connected components of the H-positive mask (nuclei): count per 10,000 tissue
      pixels, mean, std and maximum area (pixels at the tile resolution) and mean log area
      (nuclei size);
    - ``granulo_r1..3``: granulometry, the fraction of the H-positive mask surviving a binary
      opening with a disc of radius 1, 2, 3 pixels (larger nuclei survive larger discs);
    - ``grad_mean``, ``grad_std``, ``lap_abs_mean``: Sobel gradient magnitude and absolute
      Laplacian of the grey image (/255); ``h_grad_mean``: gradient magnitude of H.

    Blob sizes depend on the pixel size, so tiles must come at a fixed resolution (the tiling
    stage's target mpp).
    """

    name = "hed_texture"
    feature_names = HED_FEATURES
    dim = len(HED_FEATURES)

    def __init__(
        self, *, h_threshold: float = 0.45, e_threshold: float = 0.1, tissue_od: float = 0.15
    ) -> None:
        self.h_threshold = float(h_threshold)
        self.e_threshold = float(e_threshold)
        self.tissue_od = float(tissue_od)

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        tiles = np.asarray(tiles)
        if tiles.ndim != 4 or tiles.shape[-1] != 3 or tiles.dtype != np.uint8:
            raise ValueError(
                f"{self.name}: expected (n, h, w, 3) uint8 tiles, got {tiles.shape} {tiles.dtype}"
            )
        n, h, w, _ = tiles.shape
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        x = tiles.astype(np.float32) / 255.0  # (n, h, w, 3)
        rgb_mean = x.mean(axis=(1, 2))  # (n, 3)
        rgb_std = x.std(axis=(1, 2))
        hed = rgb_to_hed(tiles)  # (n, h, w, 3)
        flat = hed.reshape(n, h * w, 3)
        hq = np.quantile(flat[..., 0], [0.1, 0.5, 0.9], axis=1).T  # (n, 3)
        eq = np.quantile(flat[..., 1], [0.1, 0.5, 0.9], axis=1).T
        hmean, emean = flat[..., 0].mean(axis=1), flat[..., 1].mean(axis=1)  # (n,)
        h_stats = np.column_stack([hmean, flat[..., 0].std(axis=1), hq])
        e_stats = np.column_stack([emean, flat[..., 1].std(axis=1), eq])
        d_stats = np.column_stack([flat[..., 2].mean(axis=1), flat[..., 2].std(axis=1)])

        od_sum = optical_density(tiles).sum(axis=-1)  # (n, h, w)
        tissue = od_sum > self.tissue_od
        n_tissue = np.maximum(tissue.sum(axis=(1, 2)), 1).astype(np.float32)  # (n,)
        hpos = hed[..., 0] > self.h_threshold  # (n, h, w)
        hstrong = hed[..., 0] > 1.5 * self.h_threshold
        epos = hed[..., 1] > self.e_threshold
        fracs = np.column_stack(
            [
                od_sum.mean(axis=(1, 2)),
                tissue.mean(axis=(1, 2)),
                hpos.sum(axis=(1, 2)) / n_tissue,
                hstrong.sum(axis=(1, 2)) / n_tissue,
                epos.sum(axis=(1, 2)) / n_tissue,
                hmean / np.maximum(emean, 1e-3),
            ]
        )
        blobs = _blob_stats(hpos, n_tissue)  # (n, 5)
        granulo = _granulometry(hpos, radii=(1, 2, 3))  # (n, 3)
        grey = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (n, h, w)
        gmag = _gradient_magnitude(grey)
        lap = np.abs(_laplacian(grey))
        texture = np.column_stack(
            [
                gmag.mean(axis=(1, 2)),
                gmag.std(axis=(1, 2)),
                lap.mean(axis=(1, 2)),
                _gradient_magnitude(hed[..., 0]).mean(axis=(1, 2)),
            ]
        )
        out = np.column_stack(
            [rgb_mean, rgb_std, h_stats, e_stats, d_stats, fracs, blobs, granulo, texture]
        )
        return out.astype(np.float32)


def _gradient_magnitude(img: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of each (h, w) plane of an (n, h, w) stack, tiles kept apart."""
    d = np.array([-1.0, 0.0, 1.0], dtype=np.float32)
    sm = np.array([1.0, 2.0, 1.0], dtype=np.float32)
    gx = ndimage.correlate1d(ndimage.correlate1d(img, d, axis=2, mode="reflect"), sm, axis=1)
    gy = ndimage.correlate1d(ndimage.correlate1d(img, d, axis=1, mode="reflect"), sm, axis=2)
    return np.hypot(gx, gy) / 8.0


def _laplacian(img: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian of each (h, w) plane of an (n, h, w) stack."""
    k = np.array([1.0, -2.0, 1.0], dtype=np.float32)
    return ndimage.correlate1d(img, k, axis=1, mode="reflect") + ndimage.correlate1d(
        img, k, axis=2, mode="reflect"
    )


def _blob_stats(mask: np.ndarray, n_tissue: np.ndarray) -> np.ndarray:
    """Connected components of each (h, w) plane of an (n, h, w) bool stack -> (n, 5)."""
    n = mask.shape[0]
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connected within a tile, never across tiles
    labels, nlab = ndimage.label(mask, structure=structure)
    out = np.zeros((n, 5), dtype=np.float64)
    if nlab == 0:
        return out
    flat = labels.ravel()
    area = np.bincount(flat, minlength=nlab + 1)[1:].astype(np.float64)  # (nlab,)
    tile_of = np.zeros(nlab + 1, dtype=np.int64)
    tile_of[flat] = np.repeat(np.arange(n), mask[0].size)
    tile_of = tile_of[1:]  # (nlab,)
    count = np.bincount(tile_of, minlength=n).astype(np.float64)  # (n,)
    s1 = np.bincount(tile_of, weights=area, minlength=n)
    s2 = np.bincount(tile_of, weights=area * area, minlength=n)
    slog = np.bincount(tile_of, weights=np.log(area), minlength=n)
    amax = np.zeros(n)
    np.maximum.at(amax, tile_of, area)
    c = np.maximum(count, 1.0)
    mean = s1 / c
    out[:, 0] = 1e4 * count / n_tissue
    out[:, 1] = mean
    out[:, 2] = np.sqrt(np.maximum(s2 / c - mean * mean, 0.0))
    out[:, 3] = slog / c
    out[:, 4] = amax
    return out


def _granulometry(mask: np.ndarray, *, radii: tuple[int, ...]) -> np.ndarray:
    """Fraction of each plane's mask surviving openings with discs of the given radii -> (n, k)."""
    total = np.maximum(mask.sum(axis=(1, 2)), 1).astype(np.float64)  # (n,)
    cols = []
    for r in radii:
        y, x = np.mgrid[-r : r + 1, -r : r + 1]
        disc = (x * x + y * y <= r * r)[None]  # (1, k, k): no mixing across tiles
        opened = ndimage.binary_opening(mask, structure=disc)
        cols.append(opened.sum(axis=(1, 2)) / total)
    return np.column_stack(cols)


register_encoder("hed_texture", HedTextureEncoder)
