"""Batches of tiles read from a slide: in-process, or by torch ``DataLoader`` worker processes.

:func:`iter_tile_batches` yields ``(b, s, s, 3)`` uint8 batches in the coordinates' order. With
``num_workers=0`` it reads in the calling process (no torch needed); with ``num_workers > 0`` a
:class:`torch.utils.data.DataLoader` runs :class:`TileBatchDataset` in that many processes, each
opening the slide lazily on its first batch, so reading and decoding overlap with encoding in
the main process. A read error in a worker comes back as a :class:`SlideError` naming the slide
(not as a worker traceback).

A tile whose data cannot be decoded (a corrupt JPEG tile: :class:`openslide.OpenSlideError`)
is skipped, up to ``max_unreadable`` tiles per slide (default 0: the first one fails the slide).
OpenSlide leaves a handle in an error state after a failed read (every later read raises the
same error), so the reader closes it and reopens the slide before reading the next tile.

:class:`Progress` logs tiles done, rate and time left at most every ``every_s`` seconds.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openslide

from mmlego.wsi.slide import SlideError, open_handle, read_tile

log = logging.getLogger(__name__)


class TileBatchDataset:
    """Map-style dataset: item ``i`` is the ``i``-th batch of tiles,
    ``(tiles, ok, tile_errors, error)``.

    ``ok`` is (b,) bool, whether each tile of the batch could be read; ``tiles`` is
    (ok.sum(), out_size, out_size, 3) uint8, the readable ones in order; ``tile_errors`` holds
    one message per unreadable tile (its level-0 x, y and OpenSlide's error), in order;
    ``error`` is ``""`` or the reason the whole batch could not be read (the slide cannot be
    opened; then ``tiles`` is empty). The slide is opened on first use in each process (never
    pickled), so it works with any ``DataLoader`` start method, and reopened after a failed
    tile read.
    """

    def __init__(
        self,
        slide_path: str | os.PathLike,
        coords: np.ndarray,
        *,
        level: int,
        read_size: int,
        out_size: int,
        batch_size: int,
    ) -> None:
        self.slide_path = Path(slide_path)
        self.coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)  # (n, 2)
        self.level, self.read_size, self.out_size = int(level), int(read_size), int(out_size)
        self.batch_size = int(batch_size)
        self._slide: openslide.OpenSlide | None = None

    def __len__(self) -> int:
        return -(-len(self.coords) // self.batch_size)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_slide"] = None  # each worker opens its own handle
        return state

    def _open(self) -> openslide.OpenSlide:
        if self._slide is None:
            self._slide = open_handle(self.slide_path)
        return self._slide

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
        batch = self.coords[i * self.batch_size : (i + 1) * self.batch_size]  # (b, 2)
        s = self.out_size
        tiles = np.empty((len(batch), s, s, 3), dtype=np.uint8)
        ok = np.ones(len(batch), dtype=bool)
        tile_errors = []
        try:
            for j, (x, y) in enumerate(batch):
                slide = self._open()
                try:
                    tiles[j] = read_tile(
                        slide, x, y, level=self.level, read_size=self.read_size, out_size=s
                    )
                except openslide.OpenSlideError as e:
                    ok[j] = False
                    tile_errors.append(f"tile at ({x}, {y}): {e or type(e).__name__}")
                    self.close()  # the handle is in an error state: reopen for the next tile
        except (SlideError, FileNotFoundError, openslide.OpenSlideError) as e:
            empty = np.zeros((0, s, s, 3), dtype=np.uint8)
            return empty, np.zeros(len(batch), dtype=bool), (), str(e) or type(e).__name__
        return (tiles if ok.all() else tiles[ok]), ok, tuple(tile_errors), ""

    def close(self) -> None:
        """Close this process's slide handle (if open)."""
        if self._slide is not None:
            self._slide.close()
            self._slide = None


def iter_tile_batches(
    slide_path: str | os.PathLike,
    coords: np.ndarray,
    *,
    level: int,
    read_size: int,
    out_size: int,
    batch_size: int,
    num_workers: int = 0,
    prefetch: int = 2,
    max_unreadable: int = 0,
    unreadable: dict[int, str] | None = None,
) -> Iterator[np.ndarray]:
    """Yield (b, out_size, out_size, 3) uint8 tile batches in the order of ``coords`` (n, 2).

    ``num_workers=0``: one background thread of this process reads up to ``prefetch`` batches
    ahead (OpenSlide decodes without holding the GIL, so reading overlaps encoding with no copy
    between processes); ``prefetch=0`` reads in the calling thread. ``num_workers > 0``: that
    many ``DataLoader`` processes.

    Up to ``max_unreadable`` tiles that cannot be decoded are skipped: left out of the batches
    (so a batch may hold fewer than ``batch_size`` tiles; an empty one is not yielded), and
    recorded in ``unreadable`` when given (index into ``coords`` -> reason). Raises
    :class:`SlideError` naming the slide when the slide cannot be opened, or as soon as more
    tiles than that cannot be read (reading stops there).
    """
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    if max_unreadable < 0:
        raise ValueError(f"max_unreadable must be >= 0, got {max_unreadable}")
    if len(coords) == 0:
        return
    ds = TileBatchDataset(
        slide_path,
        coords,
        level=level,
        read_size=read_size,
        out_size=out_size,
        batch_size=batch_size,
    )
    lost = unreadable if unreadable is not None else {}  # in reading order

    def readable(i: int, tiles, ok, tile_errors, error: str) -> np.ndarray:
        """The batch's readable tiles; records the others, raises past the budget."""
        if error:
            raise SlideError(
                error if error.startswith(str(slide_path)) else f"{slide_path}: {error}"
            )
        bad = i * ds.batch_size + np.flatnonzero(~np.asarray(ok, dtype=bool))
        for k, msg in zip(bad.tolist(), tile_errors, strict=True):
            lost[k] = msg
        if len(lost) > max_unreadable:
            first = next(iter(lost.values()))
            if max_unreadable == 0:
                raise SlideError(f"{slide_path}: cannot read {first}")
            raise SlideError(
                f"{slide_path}: more than {max_unreadable} of its {len(ds.coords)} tiles cannot "
                f"be read ({len(lost)} so far); first: {first}"
            )
        return tiles

    if num_workers == 0:
        ds._open()  # a slide that cannot be opened raises here, naming the file
        items = _prefetched(ds, prefetch) if prefetch > 0 else map(ds.__getitem__, range(len(ds)))
        try:
            for i, item in enumerate(items):
                tiles = readable(i, *item)
                if len(tiles):
                    yield tiles
        finally:
            if prefetch > 0:
                items.close()  # stops and joins the reading thread before the handle closes
            ds.close()
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(
        ds,
        batch_size=None,  # items are already batches
        shuffle=False,
        num_workers=num_workers,
        prefetch_factor=2,
    )
    for i, (tiles, ok, tile_errors, error) in enumerate(loader):
        tiles = readable(i, tiles, ok.numpy(), tuple(tile_errors), error)
        if len(tiles):
            yield tiles.numpy()


def _prefetched(
    ds: TileBatchDataset, depth: int
) -> Iterator[tuple[np.ndarray, np.ndarray, tuple[str, ...], str]]:
    """``ds[0], ds[1], ...`` read by a daemon thread at most ``depth`` items ahead.

    Stops the thread when the consumer stops early (an encoder error, a closed generator).
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        for i in range(len(ds)):
            if stop.is_set():
                return
            try:
                item = ds[i]
            except BaseException as e:  # pragma: no cover - ds[i] returns read errors itself
                empty = np.zeros((0, 0, 0, 3), dtype=np.uint8)
                item = (empty, np.zeros(0, dtype=bool), (), f"{type(e).__name__}: {e}")
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[-1]:
                return

    thread = threading.Thread(target=work, name="tile-reader", daemon=True)
    thread.start()
    try:
        for _ in range(len(ds)):
            item = q.get()
            yield item
            if item[-1]:
                return
    finally:
        stop.set()
        thread.join()


class Progress:
    """Log ``label: done/total tiles (pct), rate tiles/s, about N s left`` every ``every_s``."""

    def __init__(
        self, total: int, *, label: str, every_s: float = 10.0, logger: logging.Logger = log
    ) -> None:
        self.total, self.label, self.every_s, self.log = int(total), label, every_s, logger
        self.done = 0
        self.start = self._last = time.perf_counter()

    def update(self, n: int) -> None:
        """Count ``n`` more tiles; log if ``every_s`` passed since the last line."""
        self.done += n
        now = time.perf_counter()
        if now - self._last >= self.every_s and self.done < self.total:
            self._last = now
            self.log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """The progress line."""
        elapsed = max((now or time.perf_counter()) - self.start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.done / max(self.total, 1)
        return (
            f"{self.label}: {self.done}/{self.total} tiles ({pct:.0f}%), {rate:.0f} tiles/s, "
            f"about {left:.0f} s left"
        )

    def finish(self) -> float:
        """Log the final line; return the rate in tiles/s."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.done / elapsed
        self.log.info("%s: %d tiles in %.1f s (%.0f tiles/s)", self.label, self.done, elapsed, rate)
        return rate
