"""Tissue segmentation of a low-resolution slide image (pure functions on numpy arrays).

The method is the usual one for H&E (as in CLAM): stained tissue is coloured, glass is grey-white,
so threshold the HSV saturation channel.

1. saturation ``S = (max - min) / max`` of RGB, scaled to 0..255;
2. median blur (``median_size`` pixels) against JPEG noise and dust;
3. threshold: Otsu's on the blurred saturation, but never below ``min_saturation`` (an all-glass
   image has a tiny saturation spread that Otsu would still split in two), or the fixed
   ``threshold`` when given. Before Otsu's threshold is computed, saturations above
   :data:`OUTLIER_CAP` (1.5) times the median of those above ``min_saturation`` are capped
   there (:func:`cap_outliers`): a small group of strongly saturated pixels (a pen line, ink)
   would otherwise be split from all the rest, pale tissue included, and the whole tissue
   lost. Pen marks themselves are coloured and stay in the mask (a tile needs ``min_tissue``
   of it): clean such slides before, or raise ``min_object_um2``;
   the median blur and the threshold are computed together without a full median filter:
   the blurred value exceeds ``t`` exactly where a majority of the window exceeds ``t``
   (a box count), and Otsu's threshold is taken on the exact median of a regular sample of
   at most 250,000 pixels (all pixels on smaller images), which keeps a 3000 x 3000 mask well
   under a second;
4. morphological closing with a disc of radius ``close_um`` microns (joins fragmented stroma);
5. removal of connected components smaller than ``min_object_um2``;
6. filling of holes smaller than ``max_hole_um2`` (nuclei-poor gaps, small lumina); larger holes
   (fat, big lumina) stay background.

Sizes are in microns so that the same parameters work at any level; :func:`segment_tissue` needs
the microns per pixel of the image it is given.

Named presets (:data:`TISSUE_PRESETS`, :func:`tissue_params`): ``default`` (H&E), ``fatty``
(pale, fat-rich tissue such as breast: lower saturation floor, fat lobules filled), ``strict``
(slides with debris, dust or faint smears: higher floor, small fragments dropped), ``ihc``
(DAB with a pale hematoxylin counterstain: lower floor). Any field can be overridden on top.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

#: Before Otsu's threshold, saturations above this many times the median saturation of the
#: foreground (the values above ``min_saturation``) are capped there (:func:`cap_outliers`).
OUTLIER_CAP = 1.5


@dataclass(frozen=True)
class TissueParams:
    """Tissue segmentation parameters (defaults suit H&E).

    Attributes
    ----------
    median_size
        Median filter size in pixels of the segmented image (odd, >= 1; 1 disables it).
    threshold
        Fixed saturation threshold (0..255); ``None`` uses Otsu's threshold.
    min_saturation
        Lower bound on Otsu's threshold (0..255); keeps blank glass blank.
    close_um
        Radius in microns of the disc used for morphological closing (0 disables it).
    min_object_um2
        Connected tissue components smaller than this area (µm²) are dropped.
    max_hole_um2
        Holes inside tissue smaller than this area (µm²) are filled.
    mask_mpp
        Resolution (µm per pixel) of the image the tiling stage segments; see
        :func:`mmlego.wsi.slide.read_low_res`. 8 µm/px puts 16 mask pixels along a 128 µm tile.
    """

    median_size: int = 5
    threshold: float | None = None
    min_saturation: float = 20.0
    close_um: float = 16.0
    min_object_um2: float = 10_000.0
    max_hole_um2: float = 4_000.0
    mask_mpp: float = 8.0

    def __post_init__(self) -> None:
        if self.median_size < 1 or self.median_size % 2 == 0:
            raise ValueError(
                f"TissueParams.median_size must be odd and >= 1, got {self.median_size}"
            )
        if self.threshold is not None and not 0 <= self.threshold <= 255:
            raise ValueError(f"TissueParams.threshold must be in [0, 255], got {self.threshold}")
        for name in ("min_saturation", "close_um", "min_object_um2", "max_hole_um2"):
            if getattr(self, name) < 0:
                raise ValueError(f"TissueParams.{name} must be >= 0, got {getattr(self, name)}")
        if not self.mask_mpp > 0:
            raise ValueError(f"TissueParams.mask_mpp must be > 0, got {self.mask_mpp}")

    def to_dict(self) -> dict[str, float | int | None]:
        """Plain dict (for JSON attributes of output files)."""
        return dataclasses.asdict(self)


#: Named segmentation presets (fields that differ from :class:`TissueParams`' defaults).
TISSUE_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "fatty": {
        "min_saturation": 10.0,
        "close_um": 32.0,
        "min_object_um2": 5_000.0,
        "max_hole_um2": 40_000.0,
    },
    "strict": {"median_size": 7, "min_saturation": 35.0, "min_object_um2": 50_000.0},
    "ihc": {"min_saturation": 12.0},
}


def tissue_params(preset: str = "default", **overrides: Any) -> TissueParams:
    """:class:`TissueParams` of a named preset (:data:`TISSUE_PRESETS`) with fields overridden.

    Raises ValueError naming the preset or field when unknown (and for invalid values).
    """
    if preset not in TISSUE_PRESETS:
        raise ValueError(
            f"unknown tissue preset {preset!r}; available: {', '.join(sorted(TISSUE_PRESETS))}"
        )
    fields = {f.name for f in dataclasses.fields(TissueParams)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown tissue parameter(s) {unknown}; known: {sorted(fields)}")
    return TissueParams(**{**TISSUE_PRESETS[preset], **overrides})


def tissue_params_from_config(spec: Mapping[str, Any] | None) -> TissueParams:
    """:class:`TissueParams` from a config mapping ``{preset: name, <field>: value, ...}``."""
    spec = dict(spec or {})
    return tissue_params(str(spec.pop("preset", "default")), **spec)


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation of (h, w, 3) uint8 RGB as (h, w) float32 in 0..255."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an (h, w, 3) RGB image, got shape {rgb.shape}")
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = np.maximum(np.maximum(r, g), b).astype(np.float32)  # (h, w), planes, not axis=2
    mn = np.minimum(np.minimum(r, g), b).astype(np.float32)
    mn -= mx
    mn *= -255.0
    np.divide(mn, mx, out=mn, where=mx > 0)
    mn[mx == 0] = 0.0
    return mn


def otsu_threshold(values: np.ndarray, *, bins: int = 256) -> float:
    """Otsu's threshold of values in 0..255 (maximises the between-class variance).

    Values above the returned threshold form the upper class.
    """
    hist, edges = np.histogram(np.asarray(values).ravel(), bins=bins, range=(0.0, 255.0))
    hist = hist.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    # Any cut in an empty gap between the classes is optimal: take the middle of the plateau.
    best = np.flatnonzero(between >= between.max() * (1.0 - 1e-9))
    return float((edges[best[0] + 1] + edges[best[-1] + 1]) / 2)


def cap_outliers(values: np.ndarray, *, floor: float, cap: float = OUTLIER_CAP) -> np.ndarray:
    """``values`` with those above ``cap`` times the median of the values above ``floor`` (the
    foreground) lowered to that level; unchanged when no value is above ``floor``.

    Otsu's threshold maximises the between-class variance, which a small, distant group of
    values dominates: a pen line at saturation ~200 is split from pale tissue at ~30 and glass
    at ~5 alike, and the tissue is lost. Capped, such a group sits beside the tissue and the
    threshold falls between glass and tissue again; tissue values, within a few times each
    other, are hardly capped, and where glass and tissue are apart the threshold (the middle of
    the gap) does not move at all.
    """
    above = values[values > floor]
    if not above.size:
        return values
    return np.minimum(values, cap * np.median(above))


def _disc(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius


def remove_small_objects(mask: np.ndarray, *, min_pixels: int) -> np.ndarray:
    """Drop 8-connected components of ``mask`` with fewer than ``min_pixels`` pixels."""
    if min_pixels <= 1 or not mask.any():
        return mask.copy()
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_pixels
    keep[0] = False
    return keep[labels]


def fill_small_holes(mask: np.ndarray, *, max_pixels: int) -> np.ndarray:
    """Fill background components enclosed by ``mask`` with at most ``max_pixels`` pixels.

    Background touching the image border is never a hole (4-connectivity for background).
    """
    if max_pixels <= 0:
        return mask.copy()
    labels, n = ndimage.label(~mask)
    if n == 0:
        return mask.copy()
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    fill = sizes <= max_pixels
    fill[0] = False
    fill[border] = False
    return mask | fill[labels]


def _median_sample(values: np.ndarray, *, size: int, max_samples: int) -> np.ndarray:
    """Exact ``size`` x ``size`` medians (edge-padded) at a regular grid of at most about
    ``max_samples`` pixels of ``values`` (all pixels when the image is small enough)."""
    h, w = values.shape
    step = max(1, int(np.ceil(np.sqrt(h * w / max_samples))))
    pad = size // 2
    padded = np.pad(values, pad, mode="edge")
    windows = sliding_window_view(padded, (size, size))[::step, ::step]  # (h', w', k, k) view
    return np.median(windows.reshape(-1, size * size), axis=1)


def _majority(mask: np.ndarray, *, size: int) -> np.ndarray:
    """True where more than half of the ``size`` x ``size`` window (edge-padded) is True:
    ``median_filter(x) > t`` equals ``_majority(x > t)`` for odd-sized windows."""
    frac = ndimage.uniform_filter(mask.astype(np.float32), size=size, mode="nearest")
    return frac > 0.5


def segment_tissue(rgb: np.ndarray, *, mpp: float, params: TissueParams) -> np.ndarray:
    """Tissue mask of a low-resolution RGB image.

    Parameters
    ----------
    rgb
        (h, w, 3) uint8 RGB image (a low-resolution pyramid level or thumbnail).
    mpp
        Microns per pixel of ``rgb`` (converts the parameters' micron sizes to pixels).
    params
        Segmentation parameters.

    Returns
    -------
    numpy.ndarray
        (h, w) bool, True on tissue.
    """
    if not mpp > 0:
        raise ValueError(f"segment_tissue: mpp must be > 0, got {mpp}")
    sat = saturation(rgb)  # (h, w)
    k = params.median_size
    if params.threshold is not None:
        thr = params.threshold
    else:
        sample = _median_sample(sat, size=k, max_samples=250_000) if k > 1 else sat
        capped = cap_outliers(sample, floor=params.min_saturation)
        thr = max(otsu_threshold(capped), params.min_saturation)
    mask = _majority(sat > thr, size=k) if k > 1 else sat > thr
    radius = round(params.close_um / mpp)
    if radius >= 1 and mask.any():
        # Pad so that closing does not erode tissue touching the border.
        pad = radius + 1
        padded = np.pad(mask, pad, mode="edge")
        mask = ndimage.binary_closing(padded, structure=_disc(radius))[pad:-pad, pad:-pad]
    px_area = mpp * mpp
    mask = remove_small_objects(mask, min_pixels=int(np.ceil(params.min_object_um2 / px_area)))
    return fill_small_holes(mask, max_pixels=int(params.max_hole_um2 / px_area))
