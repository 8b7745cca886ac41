"""The bare-FastAPI floor of ``bench_api.py``: one POST endpoint that parses the JSON body and
answers 201, served like the market (one uvicorn worker on loopback, the same uvicorn defaults,
no access log). Whatever the market does beyond this is what its ratio to the floor measures.

Started by :func:`market_process.market` in place of ``pasar market serve`` (it takes and
ignores the same ``--home/--devnet`` arguments, and prints the same "listening" line).
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

import uvicorn
from fastapi import Body, FastAPI

from market_process import LISTENING_PREFIX

app = FastAPI()


@app.post("/v1/orders", status_code=201)
async def create(envelope: dict[str, Any] = Body()) -> dict[str, Any]:  # noqa: B008
    """Parse the envelope (FastAPI's own JSON body parsing) and acknowledge it."""
    return {"ok": True, "type": "order.create", "fields": len(envelope)}


class _Server(uvicorn.Server):
    """uvicorn, plus the "listening" line once it is up."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        port = next(int(s.getsockname()[1]) for x in self.servers for s in x.sockets)
        print(f"{LISTENING_PREFIX}http://127.0.0.1:{port}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--home")  # unused: the same arguments as ``pasar market serve``
    parser.add_argument("--devnet", action="store_true")
    args = parser.parse_args()
    # uvicorn binds the socket, as for the market (asyncio then sets TCP_NODELAY on each
    # connection: a socket bound here without IPPROTO_TCP would not get it, and would pay
    # 40 ms of delayed ACK per request)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    _Server(config).run()


if __name__ == "__main__":
    main()
