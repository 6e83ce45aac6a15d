"""Logging configuration, done once by an entrypoint (never at import)."""

from __future__ import annotations

import logging.config


def configure_logging(level: str = "INFO") -> None:
    """Send log records to stderr, so ``--json`` output on stdout stays one clean object.

    Records carry pseudonymous ids and counts only, never names or identity numbers.
    """
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://sys.stderr",
                    "formatter": "plain",
                }
            },
            "root": {"handlers": ["stderr"], "level": level.upper()},
        }
    )


__all__ = ["configure_logging"]
