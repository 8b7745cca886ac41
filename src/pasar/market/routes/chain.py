"""The chain and the log, for auditors: blocks by height, the head, transactions, balances."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from pasar.api.base import JSONObject
from pasar.api.chain import Balances, BlockList, ChainHead, LoggedTx, TxLog
from pasar.core.errors import PasarError
from pasar.crypto.canonical import INT_MAX  # the database stores 64-bit integers
from pasar.market.routes.common import service_of

router = APIRouter(tags=["chain"])


@router.get("/v1/chain/head", summary="The latest block and the state it leads to")
def head(request: Request) -> ChainHead:
    service = service_of(request)
    block = service.store.head_block()
    with service.lock:
        return ChainHead(
            market=service.identity.account_id,
            preset=service.preset.name,
            height=None if block is None else block.height,
            block=None if block is None else block.to_dict(),
            tx_count=service.state.tx_count,
        )


@router.get("/v1/chain/blocks", summary="Blocks from a height")
def blocks(
    request: Request,
    start: Annotated[int, Query(alias="from", ge=0, le=INT_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> BlockList:
    found = service_of(request).store.blocks(from_height=start, limit=limit)
    return BlockList(blocks=[b.to_dict() for b in found])


@router.get("/v1/chain/blocks/{height}", summary="One block")
def block(request: Request, height: Annotated[int, Path(ge=0, le=INT_MAX)]) -> JSONObject:
    found = service_of(request).store.block(height)
    if found is None:
        raise PasarError(f"no block at height {height}", code="not_found", status=404)
    return found.to_dict()


@router.get("/v1/chain/txs", summary="Logged transactions (signed envelopes) in order")
def txs(
    request: Request,
    after: Annotated[int, Query(ge=0, le=INT_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> TxLog:
    found = service_of(request).store.txs(after_seq=after, limit=limit)
    return TxLog(
        txs=[LoggedTx(seq=t.seq, digest=t.digest, at=t.at, envelope=t.envelope) for t in found]
    )


@router.get("/v1/state/balances", summary="Every non-zero ledger balance (what an audit checks)")
def balances(request: Request) -> Balances:
    service = service_of(request)
    with service.lock:
        return Balances(tx_count=service.state.tx_count, balances=service.state.balances_summary())
