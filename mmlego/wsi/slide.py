"""Opening slides with OpenSlide: resolution, pyramid level choice and low-resolution reads."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openslide
import tifffile
from PIL import Image

from mmlego.cohort.sheets import PLAUSIBLE_MPP


class SlideError(ValueError):
    """A slide cannot be used: unreadable, truncated, not a slide, or without a resolution.

    The message names the file. The WSI stage records such a slide in its QC table and goes on
    (the patient then lacks the slide modality), unless ``wsi.fail_fast`` is set.
    """


class CoarserThanTargetError(SlideError):
    """The slide's finest level is coarser than the target resolution (a 20x scan tiled at
    0.25 µm/px): recorded as unusable, like other :class:`SlideError` slides, unless
    ``wsi.coarser_slides`` is ``upsample``."""


#: A pyramid level may be at most this much coarser than the target resolution (relative), so
#: that a level at 1.05 µm/px serves a 1.0 µm/px target instead of reading a level 4x finer.
LEVEL_TOLERANCE = 0.1
#: Relative difference allowed between a slide's x and y resolutions (square pixels).
MPP_XY_TOLERANCE = 0.01
#: Most that ``wsi.coarser_slides: upsample`` enlarges tiles (the read level's resolution over
#: the target): a tile enlarged 4x holds 1/16 of its pixels' worth of scanned data.
MAX_UPSAMPLE = 4.0


def open_handle(path: str | os.PathLike) -> openslide.OpenSlide:
    """Open a slide with OpenSlide (the caller closes it); errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"slide file not found: {p}")
    try:
        return openslide.OpenSlide(str(p))
    except openslide.OpenSlideError as e:  # includes OpenSlideUnsupportedFormatError
        raise SlideError(f"{p}: OpenSlide cannot open this file: {e}; {_diagnose(p)}") from e


@contextmanager
def open_slide(path: str | os.PathLike) -> Iterator[openslide.OpenSlide]:
    """Open a slide with OpenSlide; errors name the file. Closes it on exit."""
    slide = open_handle(path)
    try:
        yield slide
    finally:
        slide.close()


TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
#: OpenSlide readers whose level 0 is the file's first TIFF image (checked for colour).
FIRST_IMAGE_LEVEL0 = ("aperio", "generic-tiff")
#: TIFF photometric interpretations of a single-channel (grayscale) image.
GRAYSCALE_PHOTOMETRIC = (tifffile.PHOTOMETRIC.MINISWHITE, tifffile.PHOTOMETRIC.MINISBLACK)


@dataclass(frozen=True)
class TiffLayout:
    """What a TIFF file's image directories say: whether its first image is tiled and
    single-channel (grayscale), and the byte where the image data of its images ends."""

    tiled: bool
    grayscale: bool
    data_end: int


def tiff_layout(path: str | os.PathLike) -> TiffLayout | None:
    """The layout of a TIFF file's images (:class:`TiffLayout`), or None when the file is not a
    TIFF or its structure cannot be read. Only the image directories are read, not the data;
    tifffile's own log of a damaged file is held back (the caller's error says what is wrong)."""
    quiet = logging.getLogger("tifffile")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        with tifffile.TiffFile(path) as tif:
            first = tif.pages.first
            return TiffLayout(
                tiled=bool(first.is_tiled),
                grayscale=first.photometric in GRAYSCALE_PHOTOMETRIC,
                data_end=max(_data_end(page) for page in tif.pages),
            )
    except Exception:  # a damaged file fails in many ways; the caller says what it can
        return None
    finally:
        quiet.setLevel(level)


def _data_end(page: tifffile.TiffPage) -> int:
    """The byte after the last tile or strip of a TIFF image."""
    ends = np.add(page.dataoffsets, page.databytecounts, dtype=np.int64)
    return int(ends.max()) if ends.size else 0


def _diagnose(path: Path) -> str:
    """Why a file OpenSlide refuses is probably not a usable slide, from its size, first bytes
    and, for a TIFF (most slide formats, SVS, NDPI, Philips, generic tiled TIFF, are TIFF
    files), the layout of its images."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes)"
    with path.open("rb") as fh:
        head = fh.read(4)
    if head not in TIFF_MAGIC:
        return (
            f"it is not a TIFF-based slide (first bytes {head!r}): not a slide, or a format "
            "OpenSlide does not read"
        )
    layout = tiff_layout(path)
    if layout is not None and layout.data_end > size:
        return (
            f"it is a truncated TIFF: its image data runs to byte {layout.data_end} but the file "
            f"has {size} bytes; copy or download it again"
        )
    if layout is not None and not layout.tiled:
        return (
            "it is a TIFF without tiles (striped), which OpenSlide does not read; convert it to "
            "a tiled pyramidal TIFF"
        )
    return (
        f"it starts like a TIFF but its structure cannot be read: truncated or corrupt "
        f"({size} bytes)?"
    )


def require_rgb(slide: openslide.OpenSlide, *, path: str | os.PathLike) -> None:
    """Raise :class:`SlideError` naming the file when the slide is a single-channel (grayscale)
    image: its saturation is zero everywhere, so no tissue would be found and the colour
    features would be meaningless. Checked on the TIFF readers whose level 0 is the file's
    first image (:data:`FIRST_IMAGE_LEVEL0`); other formats are RGB."""
    if slide.properties.get(openslide.PROPERTY_NAME_VENDOR) not in FIRST_IMAGE_LEVEL0:
        return
    layout = tiff_layout(path)
    if layout is not None and layout.grayscale:
        raise SlideError(
            f"{path}: single-channel (grayscale) image; the tissue finder and the patch "
            "encoders need an RGB brightfield scan (H&E, IHC): leave it out of the slide sheet "
            "or give the RGB scan"
        )


def slide_mpp(
    slide: openslide.OpenSlide, *, path: str | os.PathLike, override: float | None = None
) -> tuple[float, str]:
    """Microns per level-0 pixel and where it came from (``'override'`` or ``'metadata'``).

    An override (the slide sheet's ``mpp`` column) takes precedence over the file's metadata
    (``openslide.mpp-x``/``-y``, which OpenSlide fills from the vendor metadata or the TIFF
    resolution tags). Raises :class:`SlideError` naming the file when neither is available,
    when the metadata's x and y differ by more than :data:`MPP_XY_TOLERANCE` (non-square
    pixels) and when the value lies outside :data:`PLAUSIBLE_MPP`.
    """
    if override is not None:
        if not (np.isfinite(override) and override > 0):
            raise ValueError(f"{path}: mpp override must be a positive number, got {override}")
        return check_plausible_mpp(float(override), origin=None, path=path), "override"
    props = slide.properties
    xy = [
        _positive(props.get(k))
        for k in (openslide.PROPERTY_NAME_MPP_X, openslide.PROPERTY_NAME_MPP_Y)
    ]
    vals = [v for v in xy if v is not None]
    if not vals:
        raise SlideError(
            f"{path}: the slide has no resolution (no openslide.mpp-x/mpp-y property); "
            "give its microns per pixel in the slide sheet's 'mpp' column"
        )
    origin = mpp_origin(props)
    if len(vals) == 2 and abs(vals[0] - vals[1]) > MPP_XY_TOLERANCE * min(vals):
        raise SlideError(
            f"{path}: non-square pixels: {vals[0]:g} µm/px along x and {vals[1]:g} along y "
            f"from {origin}, more than {MPP_XY_TOLERANCE:.0%} apart, so square tiles would "
            "cover a stretched area; resample the slide to square pixels (or, if its pixels are "
            "square and the metadata is wrong, give its mpp in the slide sheet's 'mpp' column)"
        )
    return check_plausible_mpp(float(np.mean(vals)), origin=origin, path=path), "metadata"


def _positive(value: object) -> float | None:
    """A property's value as a positive finite number, or None."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def mpp_origin(props: Mapping[str, str]) -> str:
    """Where OpenSlide took a slide's ``openslide.mpp-x``/``-y`` from, for messages: the TIFF
    resolution tags of a generic TIFF (with their value and unit), else the vendor's metadata."""
    vendor = props.get(openslide.PROPERTY_NAME_VENDOR, "")
    if vendor == "generic-tiff" and "tiff.XResolution" in props:
        x = props["tiff.XResolution"]
        y = props.get("tiff.YResolution", x)
        unit = props.get("tiff.ResolutionUnit", "unit")
        return f"the TIFF resolution tags ({x if x == y else f'{x} x {y}'} pixels per {unit})"
    return f"the slide's {vendor} metadata" if vendor else "the slide's metadata"


def check_plausible_mpp(mpp: float, *, origin: str | None, path: str | os.PathLike) -> float:
    """``mpp`` if it lies in :data:`PLAUSIBLE_MPP`; else :class:`SlideError` naming the file,
    the value and where it came from (``origin``; None: the slide sheet's ``mpp`` column)."""
    lo, hi = PLAUSIBLE_MPP
    if lo <= mpp <= hi:
        return mpp
    where, fix = (
        (origin, "give its mpp in the slide sheet's 'mpp' column")
        if origin is not None
        else ("the slide sheet's 'mpp' column", "correct it there")
    )
    raise SlideError(
        f"{path}: implausible resolution {mpp:g} µm/px from {where}, outside the {lo:g} to "
        f"{hi:g} µm/px of a slide scan; {fix}"
    )


def choose_level(
    downsamples: tuple[float, ...] | list[float],
    *,
    mpp0: float,
    target_mpp: float,
    tolerance: float = LEVEL_TOLERANCE,
    path: str | os.PathLike = "slide",
    upsample: bool = False,
    max_upsample: float = MAX_UPSAMPLE,
) -> int:
    """Pyramid level to read tiles from for a target resolution.

    The coarsest level whose resolution ``mpp0 * downsample`` is at most
    ``target_mpp * (1 + tolerance)``: reading it and resizing down (or by a few percent up)
    gives the target resolution with the least data read. If even the finest level is coarser
    than that (the slide was scanned at a lower resolution than the target), raises
    :class:`CoarserThanTargetError` naming the file, or with ``upsample=True`` returns the
    finest level (its tiles are then enlarged to the target resolution); a finest level more
    than ``max_upsample`` times coarser than the target raises either way.
    """
    limit = target_mpp * (1.0 + tolerance)
    ok = [i for i, ds in enumerate(downsamples) if mpp0 * ds <= limit]
    if ok:
        return max(ok, key=lambda i: downsamples[i])
    finest = min(range(len(downsamples)), key=lambda i: downsamples[i])
    level_mpp = mpp0 * downsamples[finest]
    factor = level_mpp / target_mpp
    coarser = (
        f"{path}: slide resolution {level_mpp:g} µm/px is {factor:.3g}x coarser than the target "
        f"{target_mpp:g} µm/px"
    )
    coarser_target = f"raise wsi.target_mpp to {level_mpp:g} or more (a lower magnification)"
    if factor > max_upsample:
        raise CoarserThanTargetError(
            f"{coarser}, more than wsi.coarser_slides: upsample enlarges tiles "
            f"({max_upsample:g}x at most); {coarser_target}, or check the slide's resolution"
        )
    if upsample:
        return finest
    raise CoarserThanTargetError(
        f"{coarser} (tolerance {tolerance:.0%}), so it cannot give tiles at wsi.target_mpp; "
        f"{coarser_target}, or set wsi.coarser_slides: upsample to enlarge its tiles"
    )


def _rgba_to_rgb(img: Image.Image) -> np.ndarray:
    """(h, w, 3) uint8 from an OpenSlide RGBA region; transparent (no data) pixels become white."""
    arr = np.asarray(img)
    if arr[..., 3].min() == 255:  # the usual case: no transparent pixel, convert in C
        return np.asarray(img.convert("RGB"))
    rgb = arr[..., :3].copy()
    rgb[arr[..., 3] == 0] = 255
    return rgb


def read_low_res(
    slide: openslide.OpenSlide, *, mpp0: float, mask_mpp: float, strip_pixels: int = 8_000_000
) -> tuple[np.ndarray, float, float]:
    """A low-resolution RGB image of the whole slide at about ``mask_mpp`` microns per pixel.

    Reads the coarsest pyramid level whose resolution is at most ``2 * mask_mpp`` (level 0 if
    none), in strips of rows, each box-reduced by the integer factor
    ``f = max(1, round(mask_mpp / level_mpp))``; so no level is ever read whole and memory stays
    bounded whatever the pyramid (about ``strip_pixels`` level pixels per strip, rounded to a
    multiple of ``f`` rows). The result's resolution lies between 2/3 and 2 times ``mask_mpp``.

    Returns
    -------
    rgb : numpy.ndarray
        (h, w, 3) uint8.
    scale_x, scale_y : float
        Level-0 pixels per pixel of ``rgb`` along x and y.
    """
    w0, h0 = slide.dimensions
    downsamples = slide.level_downsamples
    ok = [i for i, ds in enumerate(downsamples) if mpp0 * ds <= 2.0 * mask_mpp]
    level = max(ok, key=lambda i: downsamples[i]) if ok else 0
    ds = downsamples[level]
    wl, hl = slide.level_dimensions[level]
    f = max(1, round(mask_mpp / (mpp0 * ds)))
    rows = f * max(1, strip_pixels // (wl * f))
    out = np.empty((-(-hl // f), -(-wl // f), 3), dtype=np.uint8)
    for y in range(0, hl, rows):
        h = min(rows, hl - y)
        strip = _rgba_to_rgb(slide.read_region((0, round(y * ds)), level, (wl, h)))
        if f > 1:
            strip = np.asarray(Image.fromarray(strip).reduce(f))
        out[y // f : y // f + strip.shape[0]] = strip
    return out, w0 / out.shape[1], h0 / out.shape[0]


def resize_tile(rgb: np.ndarray, out_size: int) -> np.ndarray:
    """Resize a square (s, s, 3) uint8 tile to ``out_size``.

    An integer reduction (``s`` a multiple of ``out_size``) averages ``f x f`` blocks
    (:meth:`PIL.Image.Image.reduce`, exact and about 5x faster than Lanczos); any other size uses
    Lanczos resampling.
    """
    size = rgb.shape[0]
    if size == out_size:
        return rgb
    img = Image.fromarray(rgb)
    if size > out_size and size % out_size == 0:
        return np.asarray(img.reduce(size // out_size))
    return np.asarray(img.resize((out_size, out_size), Image.Resampling.LANCZOS))


def read_tile(
    slide: openslide.OpenSlide, x: int, y: int, *, level: int, read_size: int, out_size: int
) -> np.ndarray:
    """One square tile (out_size, out_size, 3) uint8 at level-0 ``(x, y)`` (see
    :func:`read_tiles`)."""
    region = slide.read_region((int(x), int(y)), level, (read_size, read_size))
    return resize_tile(_rgba_to_rgb(region), out_size)


def read_tiles(
    slide: openslide.OpenSlide,
    coords: np.ndarray,
    *,
    level: int,
    read_size: int,
    out_size: int,
) -> np.ndarray:
    """Read square tiles at level-0 ``coords`` (n, 2) from ``level`` and resize to ``out_size``
    (:func:`resize_tile`).

    Returns (n, out_size, out_size, 3) uint8; areas without data are white.
    """
    out = np.empty((len(coords), out_size, out_size, 3), dtype=np.uint8)
    for i, (x, y) in enumerate(np.asarray(coords, dtype=np.int64)):
        out[i] = read_tile(slide, x, y, level=level, read_size=read_size, out_size=out_size)
    return out
