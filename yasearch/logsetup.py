"""Log files of a long-running peer: the log (``--log-file``) and the HTTP access log
(``--access-log``), both rotated by size so a peer can run for months."""

from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

#: A log file is rotated at this size; this many old files are kept (``peer.log.1`` ...).
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Apache's combined log format, which log analysers read, plus the time taken.
ACCESS_FORMAT = '%a %t "%r" %s %b "%{Referer}i" "%{User-Agent}i" %Tf'


def _rotating(path: str | Path) -> RotatingFileHandler:
    return RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")


def add_log_file(path: str | Path) -> None:
    """Also write the log (at the level -v chose, at least warnings) to ``path``, rotated."""
    handler = _rotating(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.getLogger().addHandler(handler)


def access_logger(target: str) -> logging.Logger:
    """The access log: ``-`` for stdout, else a file path (rotated)."""
    logger = logging.getLogger("yasearch.access")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    handler: logging.Handler = logging.StreamHandler(sys.stdout) if target == "-" else _rotating(target)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    return logger
