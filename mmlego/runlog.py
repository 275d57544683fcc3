"""Logging for the workflow: each job logs to its Snakemake log file (:func:`job_logging`); what
the library logs while a workflow is parsed goes to Snakemake's output (:func:`forward_logging`)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def job_logging(log_path: str | None, *, threads: int = 1) -> Iterator[logging.Logger]:
    """Send log records to ``log_path`` (and stderr); record a failing job's error in the log.

    Also bounds torch's CPU threads to the job's ``threads`` when torch is already imported.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(max(1, threads))
    logger = logging.getLogger("mmlego")
    try:
        yield logger
    except Exception as exc:
        logger.error("%s: %s", type(exc).__name__, exc, exc_info=True)
        raise


class _Forward(logging.Handler):
    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.log(record.levelno, record.getMessage())


@contextmanager
def forward_logging(
    target: logging.Logger, *, name: str = "mmlego", level: int = logging.INFO
) -> Iterator[None]:
    """Pass the records of logger ``name`` at ``level`` and above to ``target`` in the block.

    For messages logged while a workflow is parsed (e.g. the pan-cancer plan), which no job's
    log receives: with Snakemake's logger as ``target`` they appear in its output.
    """
    source = logging.getLogger(name)
    handler = _Forward(target)
    handler.setLevel(level)
    old_level = source.level
    source.addHandler(handler)
    if source.getEffectiveLevel() > level:
        source.setLevel(level)
    try:
        yield
    finally:
        source.removeHandler(handler)
        source.setLevel(old_level)
