"""Patch encoders: a registry of callables that turn RGB tiles into feature vectors.

An encoder is any object with

- ``name: str`` and ``dim: int``,
- ``__call__(tiles) -> features``: ``tiles`` (n, h, w, 3) uint8 RGB, returns (n, dim) float32,

and optionally ``feature_names: tuple[str, ...]`` (length ``dim``) and ``torch_encoder = True``
(accepts torch tensors too). :func:`get_encoder` builds one from a spec string:

- a registered name (:func:`register_patch_encoder`): ``hed_texture`` (default, CPU, no weights:
  :class:`HedTextureEncoder`, 36 documented stain/colour/texture features, :data:`HED_FEATURES`),
  ``resnet50_trunc`` (ImageNet ResNet50 up to layer3, 1024 features), ``uni`` (UNI, 1024);
- ``<family>:<argument>`` for a registered family (``register_patch_encoder(..., family=True)``):
  ``timm:<model name>``, ``torchscript:<path>``, ``checkpoint:<path>``.

The neural encoders live in :mod:`mmlego.wsi.torch_encoders` (imported only when one is asked
for, so the weight-free path does not import torch); their options (``weights``, ``device``,
``precision``, ``img_size``, ``allow_download``, ...) are documented there. Nothing downloads
weights unless ``allow_download=True``; a missing file raises an error that says where to put it.

A factory with ``uses_gpu = False`` (``hed_texture``) runs on the CPU: :func:`encoder_gpus`
gives its slide shard jobs no GPU; any other encoder gets one unless its ``device`` option is
``'cpu'``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy import ndimage

from mmlego.registry import Registry


@runtime_checkable
class Encoder(Protocol):
    """What the feature stage needs from a patch encoder."""

    name: str
    dim: int

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        """(n, h, w, 3) uint8 RGB tiles -> (n, dim) float32 features."""
        ...


EncoderFactory = Callable[..., Encoder]
#: The patch encoders by name (:class:`mmlego.registry.Registry`, as the block encoders).
PATCH_ENCODERS: Registry[EncoderFactory] = Registry("patch encoder")


def register_patch_encoder(
    name: str, factory: EncoderFactory, *, family: bool = False, overwrite: bool = False
) -> None:
    """Make ``get_encoder(name, **kwargs)`` return ``factory(**kwargs)``; with ``family``,
    ``get_encoder(f"{name}:{arg}", **kwargs)`` return ``factory(arg, **kwargs)``."""
    PATCH_ENCODERS.register(name, factory, family=family, overwrite=overwrite)


def available_encoders() -> list[str]:
    """Names accepted by :func:`get_encoder`, sorted (families as ``'<family>:...'``)."""
    return PATCH_ENCODERS.names()


def get_encoder(spec: str, **kwargs: Any) -> Encoder:
    """Build the encoder named by ``spec`` (a registered name or ``family:argument``)."""
    factory, args = PATCH_ENCODERS.lookup(spec)
    try:
        enc = factory(*args, **kwargs)
    except TypeError as e:
        if "keyword argument" not in str(e):
            raise
        raise ValueError(
            f"encoder {spec!r} does not take these options {sorted(kwargs)}: {e}"
        ) from e
    if not isinstance(enc, Encoder):
        raise TypeError(f"encoder factory {spec!r} returned {type(enc).__name__}, not an Encoder")
    return enc


def encoder_gpus(spec: str, options: Mapping[str, Any] | None = None) -> int:
    """GPUs a job encoding tiles with ``spec`` and ``options`` asks for: 0 for an encoder whose
    factory says ``uses_gpu = False`` or with ``device: cpu`` in its options, else 1."""
    factory, _ = PATCH_ENCODERS.lookup(spec)
    on_cpu = str((options or {}).get("device", "auto")) == "cpu"
    return 0 if on_cpu or not getattr(factory, "uses_gpu", True) else 1


def _torch_factory(attr: str) -> Callable[..., Encoder]:
    """A factory that imports :mod:`mmlego.wsi.torch_encoders` (and torch) only when called."""

    def factory(*args: Any, **kwargs: Any) -> Encoder:
        from mmlego.wsi import torch_encoders

        return getattr(torch_encoders, attr)(*args, **kwargs)

    factory.__name__ = attr
    return factory


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

    Per tile (vectorised over the batch, float32 throughout, a few passes over the pixels):

    - ``rgb_mean_*``, ``rgb_std_*``: colour mean and standard deviation (/255);
    - ``h_*``, ``e_*``: hematoxylin and eosin concentration (:func:`rgb_to_hed`) mean, std and
      10/50/90 % quantiles (from a per-tile histogram, bins of 0.004 optical density, of every
      other pixel in each direction, interpolated in the bin); ``d_mean``, ``d_std``: the
      residual (DAB) channel;
    - ``od_sum_mean``: mean total optical density; ``tissue_frac``: fraction of pixels with total
      OD above ``tissue_od`` (not glass);
    - ``h_pos_frac``, ``h_strong_frac``: fraction of tissue pixels with H above ``h_threshold``
      (nuclei density proxy) and above 1.5 times that; ``e_pos_frac``: E above ``e_threshold``;
      ``h_over_e``: mean H over mean E;
    - ``blob_*``: 8-connected components of the H-positive mask (nuclei): count per 10,000 tissue
      pixels, mean, std and maximum area (pixels at the tile resolution) and mean log area
      (nuclei size);
    - ``granulo_r1..3``: granulometry, the fraction of the H-positive mask surviving a binary
      opening with a square of side 3, 5, 7 pixels (larger nuclei survive larger squares);
    - ``grad_mean``, ``grad_std``, ``lap_abs_mean``: gradient magnitude (central differences,
      /2) and absolute 4-neighbour Laplacian of the grey image (/255) on the tile's interior;
      ``h_grad_mean``: gradient magnitude of H.

    Blob sizes depend on the pixel size, so tiles must come at a fixed resolution (the tiling
    stage's target mpp). Each tile's features depend on that tile only (never on the batch).
    """

    name = "hed_texture"
    uses_gpu = False
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
        if h < 8 or w < 8:
            raise ValueError(f"{self.name}: tiles must be at least 8 x 8 pixels, got {h} x {w}")
        # A few tiles at a time: the temporaries stay in the CPU cache (about 2x faster than
        # whole batches, which are memory-bound); features are per tile, so the result is equal.
        k = max(1, _CHUNK_PIXELS // (h * w))
        if n > k:
            return np.concatenate([self(tiles[i : i + k]) for i in range(0, n, k)])
        p = h * w
        x = tiles.reshape(n * p, 3).astype(np.float32)  # (N, 3) intensities 0..255
        grey = (x @ _GREY).reshape(n, h, w)  # (n, h, w) in 0..1, full resolution
        # Tile statistics on every other pixel in each direction (a quarter of the pixels).
        sub = np.ascontiguousarray(x.reshape(n, h, w, 3)[:, ::2, ::2].reshape(-1, 3).T)
        q = sub.shape[1] // n  # pixels per tile in the subsample
        rgb_mean, rgb_std = _row_moments(sub.reshape(3 * n, q))  # (3 n,) each
        rgb_mean = rgb_mean.reshape(3, n).T / 255.0  # (n, 3)
        rgb_std = rgb_std.reshape(3, n).T / 255.0
        _to_od(x)  # in place: optical density, full resolution (N, 3)
        _to_od(sub)  # (3, n q)
        hfull = x @ _HED_T[0]  # (N,) hematoxylin at full resolution (blobs, gradient)
        np.maximum(hfull, 0.0, out=hfull)
        hf = hfull.reshape(n, h, w)
        od_sum = sub.sum(axis=0).reshape(n, q)  # (n, q)
        hed = _HED_T @ sub  # (3, n q) stain concentrations
        np.maximum(hed, 0.0, out=hed)
        mean, std = _row_moments(hed.reshape(3 * n, q))
        mean, std = mean.reshape(3, n), std.reshape(3, n)
        quant = _hist_quantiles(hed[:2].reshape(2 * n, q), (0.1, 0.5, 0.9)).reshape(2, n, 3)
        out = np.empty((n, self.dim), dtype=np.float32)
        out[:, 0:3] = rgb_mean
        out[:, 3:6] = rgb_std
        out[:, 6], out[:, 7], out[:, 8:11] = mean[0], std[0], quant[0]  # h
        out[:, 11], out[:, 12], out[:, 13:16] = mean[1], std[1], quant[1]  # e
        out[:, 16], out[:, 17] = mean[2], std[2]  # d

        hs, es = hed[0].reshape(n, q), hed[1].reshape(n, q)
        tissue_q = (od_sum > self.tissue_od).sum(axis=1)  # (n,) in the subsample
        t_q = np.maximum(tissue_q, 1).astype(np.float64)
        out[:, 18] = od_sum.mean(axis=1)
        out[:, 19] = tissue_q / q
        out[:, 20] = (hs > self.h_threshold).sum(axis=1) / t_q
        out[:, 21] = (hs > 1.5 * self.h_threshold).sum(axis=1) / t_q
        out[:, 22] = (es > self.e_threshold).sum(axis=1) / t_q
        out[:, 23] = mean[0] / np.maximum(mean[1], 1e-3)
        hpos = hf > self.h_threshold  # (n, h, w) full resolution
        out[:, 24:29] = _blob_stats(hpos, t_q * (p / q))  # tissue pixels scaled to the tile
        out[:, 29:32] = _opening_survival(hpos, radii=(1, 2, 3))
        out[:, 32], out[:, 33] = _row_moments(_gradient_magnitude(grey).reshape(n, -1))
        out[:, 34] = np.abs(_laplacian(grey)).reshape(n, -1).mean(axis=1)
        out[:, 35] = _gradient_magnitude(hf).reshape(n, -1).mean(axis=1)
        return out


def _to_od(x: np.ndarray) -> None:
    """Intensities 0..255 -> optical density ``log10(256) - log10(I + 1)``, in place."""
    x += 1.0
    np.log10(x, out=x)
    np.subtract(_LOG10_256, x, out=x)


def _row_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (population) of each row of (m, p) float32.

    Float32 sums (numpy sums pairwise: relative error ~1e-7) of x and x², combined in float64.
    """
    p = x.shape[1]
    mean = x.sum(axis=1).astype(np.float64) / p
    sq = np.square(x).sum(axis=1).astype(np.float64) / p
    return mean, np.sqrt(np.maximum(sq - mean * mean, 0.0))


#: Pixels encoded at a time (4 tiles of 128 px): small enough for the CPU cache.
_CHUNK_PIXELS = 65_536
_LOG10_256 = np.float32(np.log10(256.0))
_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32) / np.float32(255.0)
_HED_T = np.ascontiguousarray(HED_FROM_RGB.T, dtype=np.float32)  # hed (3, m) = _HED_T @ od
#: Histogram bins (optical density) of the H and E quantiles: 750 bins of 0.004 cover 0..3.
_Q_STEP = 0.004
_Q_BINS = 750


def _hist_quantiles(values: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Quantiles (n, len(qs)) of each row of (n, p) values >= 0, to within ``_Q_STEP``.

    One pass: a per-row histogram with ``_Q_BINS`` bins of width ``_Q_STEP`` (values beyond the
    last bin fall in it); a quantile is interpolated linearly inside the first bin whose
    cumulative count reaches ``q * p``.
    """
    n, p = values.shape
    idx = np.minimum((values * (1.0 / _Q_STEP)).astype(np.int32), _Q_BINS - 1)  # (n, p)
    idx += (np.arange(n, dtype=np.int32) * _Q_BINS)[:, None]
    counts = np.bincount(idx.ravel(), minlength=n * _Q_BINS).reshape(n, _Q_BINS)
    cum = counts.cumsum(axis=1)  # (n, bins)
    target = np.asarray(qs, dtype=np.float64) * p  # (k,)
    b = np.minimum((cum[:, :, None] < target).sum(axis=1), _Q_BINS - 1)  # (n, k) first bin
    before = np.where(b > 0, np.take_along_axis(cum, np.maximum(b - 1, 0), axis=1), 0)
    inside = (target - before) / np.maximum(np.take_along_axis(counts, b, axis=1), 1)
    return (b + np.clip(inside, 0.0, 1.0)) * _Q_STEP


def _gradient_magnitude(img: np.ndarray) -> np.ndarray:
    """Central-difference gradient magnitude (n, h - 2, w - 2) of each plane of (n, h, w)."""
    gx = img[:, 1:-1, 2:] - img[:, 1:-1, :-2]
    gy = img[:, 2:, 1:-1] - img[:, :-2, 1:-1]
    gx *= gx
    gy *= gy
    gx += gy
    return np.sqrt(gx, out=gx) * np.float32(0.5)


def _laplacian(img: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian (n, h - 2, w - 2) of each plane of an (n, h, w) stack."""
    c = img[:, 1:-1, 1:-1]
    return img[:, 1:-1, 2:] + img[:, 1:-1, :-2] + img[:, 2:, 1:-1] + img[:, :-2, 1:-1] - 4 * c


_PLANAR_EIGHT = np.zeros((3, 3, 3), dtype=bool)
_PLANAR_EIGHT[1] = True  # 8-connected within a tile, never across tiles


def _blob_stats(mask: np.ndarray, n_tissue: np.ndarray) -> np.ndarray:
    """8-connected components of each (h, w) plane of an (n, h, w) bool stack -> (n, 5).

    One labelling of the whole stack: scipy numbers components in the order of their first
    pixel in C order, so tile ``i``'s labels follow tile ``i - 1``'s and a label's tile is found
    from the tiles' largest labels.
    """
    n = mask.shape[0]
    out = np.zeros((n, 5), dtype=np.float64)
    labels, nlab = ndimage.label(mask, structure=_PLANAR_EIGHT)
    if nlab == 0:
        return out
    top = np.maximum.accumulate(labels.reshape(n, -1).max(axis=1))  # (n,) last label of tile
    ids = np.arange(1, nlab + 1)
    tile_of = np.searchsorted(top, ids, side="left")  # (nlab,)
    area = np.bincount(labels.ravel(), minlength=nlab + 1)[1:].astype(np.float64)  # (nlab,)
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


def _opening_survival(mask: np.ndarray, *, radii: tuple[int, ...]) -> np.ndarray:
    """Fraction of each plane's mask surviving openings by (2r + 1) squares -> (n, len(radii)).

    An opening (erosion then dilation by the same square) keeps the parts of the mask that
    contain the square: nuclei larger than it. Separable 3 x 3 steps on boolean slices; the
    erosion treats the outside of the tile as background, so tiles never mix.
    """
    n = mask.shape[0]
    total = np.maximum(mask.reshape(n, -1).sum(axis=1), 1).astype(np.float64)  # (n,)
    cols = []
    eroded, done = mask, 0
    for r in sorted(radii):
        while done < r:  # each step shrinks the window by one pixel per side
            eroded = eroded[:, :, :-2] & eroded[:, :, 1:-1] & eroded[:, :, 2:]
            eroded = eroded[:, :-2] & eroded[:, 1:-1] & eroded[:, 2:]
            done += 1
        opened = np.zeros((n, eroded.shape[1] + 4 * r, eroded.shape[2] + 4 * r), dtype=bool)
        opened[:, 2 * r : -2 * r, 2 * r : -2 * r] = eroded
        for _ in range(r):  # each step shrinks the padded window back by one pixel per side
            opened = opened[:, :, :-2] | opened[:, :, 1:-1] | opened[:, :, 2:]
            opened = opened[:, :-2] | opened[:, 1:-1] | opened[:, 2:]
        cols.append(opened.reshape(n, -1).sum(axis=1) / total)  # opened is (n, h, w) again
    return np.column_stack(cols)


register_patch_encoder("hed_texture", HedTextureEncoder)
register_patch_encoder("resnet50_trunc", _torch_factory("resnet50_trunc_encoder"))
register_patch_encoder("uni", _torch_factory("uni_encoder"))
register_patch_encoder("timm", _torch_factory("timm_encoder"), family=True)
register_patch_encoder("torchscript", _torch_factory("torchscript_encoder"), family=True)
register_patch_encoder("checkpoint", _torch_factory("checkpoint_encoder"), family=True)
