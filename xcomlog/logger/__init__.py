"""The logger: configuration, polling plan and the asyncio read loop over many sites.

Modules: ``config`` (the TOML file), ``plan`` (requests encoded once), ``loop`` (one task
per site: links, reconnects, events), ``scheduling`` (wall-clock ticks), ``burst`` (the
engine's fast path) and ``columns`` (answers into columns); every exchange goes through
the protocol engine (``xcomlog.engine``).

    from xcomlog.logger import load_config, run_logger
    run_logger(load_config("logger.toml"))          # until Ctrl-C / SIGTERM

or, in an event loop of your own::

    logger = Logger(load_config("logger.toml"))
    await logger.run(stop_event)                     # every site concurrently
    logger.close()                                   # flush and compact the dataset
"""

from __future__ import annotations

from .config import LoggerConfig, SiteConfig, load_config, simple_config
from .loop import Logger, SiteLogger, run_logger
from .plan import SitePlan, compile_plan

__all__ = [
    "Logger",
    "LoggerConfig",
    "SiteConfig",
    "SiteLogger",
    "SitePlan",
    "compile_plan",
    "load_config",
    "run_logger",
    "simple_config",
]
