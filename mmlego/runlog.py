"""Logging for the workflow's scripts: each job logs to its Snakemake log file."""

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
