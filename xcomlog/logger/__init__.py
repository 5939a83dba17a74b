"""The logger: configuration, polling plan and the asyncio batch read loop over many sites."""

from __future__ import annotations
