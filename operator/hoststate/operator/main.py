"""`hoststate operator`: run the Kopf operator in the foreground."""

from __future__ import annotations

import asyncio

import kopf

from .config import OperatorConfig


def run(config: OperatorConfig) -> int:
    kopf.configure(log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL)
    from . import handlers  # noqa: F401  (registers the handlers)

    memo = kopf.Memo(config=config)
    asyncio.run(
        kopf.operator(
            clusterwide=not config.namespaces,
            namespaces=list(config.namespaces),
            standalone=True,
            memo=memo,
        )
    )
    return 0
