"""All three services in one process: the gateway's public API, retrieval and ranking inside.

``create_app()`` builds the retrieval and ranking apps as they are, and the gateway app
with in-process clients (:mod:`services.combined.local`) instead of HTTP ones; its
lifespan starts retrieval and ranking (bundle loads, warm-ups, reload watchers) before
the gateway and stops them after. Only the gateway's routes are served: the internal
APIs have no port in this mode, and ``/metrics`` is the gateway's.

This is the deployment for one machine: every computed answer skips two HTTP hops and
the JSON of its candidates, which is most of what the split costs (figures in
``docs/performance.md``). Scale it out by running more copies behind a load balancer
(``hybridrec serve combined --workers N`` on one host); run the split
(``hybridrec serve all``) when retrieval and ranking should scale apart.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.combined.local import LocalRanking, LocalRetrieval
from services.gateway.app import create_app as create_gateway_app
from services.gateway.settings import GatewaySettings
from services.ranking.app import create_app as create_ranking_app
from services.retrieval.app import create_app as create_retrieval_app
from shared.serving.clients import RankingClient, RetrievalClient


def create_app() -> FastAPI:
    """The gateway app with retrieval and ranking served in this process."""
    retrieval = create_retrieval_app()
    ranking = create_ranking_app()

    def local_clients(settings: GatewaySettings) -> tuple[RetrievalClient, RankingClient]:
        return (
            LocalRetrieval(retrieval, timeout_s=settings.retrieval_timeout_s),
            LocalRanking(ranking, timeout_s=settings.ranking_timeout_s),
        )

    gateway = create_gateway_app(clients=local_clients)
    gateway_lifespan = gateway.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            retrieval.router.lifespan_context(retrieval),
            ranking.router.lifespan_context(ranking),
            gateway_lifespan(app),
        ):
            yield

    gateway.router.lifespan_context = lifespan
    return gateway
