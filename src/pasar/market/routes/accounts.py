"""Accounts: balances, history, and the devnet faucet."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from pasar.api.accounts import Balance, History, HistoryTx
from pasar.api.txs import TxAnswer
from pasar.core.accounts import LedgerAccount
from pasar.core.money import Money
from pasar.crypto.canonical import INT_MAX  # the database stores 64-bit integers
from pasar.crypto.envelope import VerifiedEnvelope
from pasar.crypto.identity import parse_account_id
from pasar.market.access import check_own_account
from pasar.market.auth import Reader, signed_envelope
from pasar.market.openapi import signs
from pasar.market.routes.common import service_of, submit_typed

router = APIRouter(tags=["accounts"])
Signed = Annotated[VerifiedEnvelope, Depends(signed_envelope)]


@router.get("/v1/accounts/{account_id}", summary="Balances of one account")
def balance(request: Request, account_id: str) -> Balance:
    """Spendable (client), earnings, stake and escrowed amounts, in the market's currency."""
    account = parse_account_id(account_id, field="account_id")
    service = service_of(request)
    currency = service.preset.currency
    with service.lock:
        ledger = service.state.ledger
        escrow = sum(
            service.state.held_for(o).micros
            for o in service.state.orders.values()
            if o.client == account and o.order.currency == currency
        )
        return Balance(
            account=account,
            currency=currency,
            balance=ledger.balance(LedgerAccount.client(account), currency).to_json(),
            earnings=ledger.balance(LedgerAccount.earnings(account), currency).to_json(),
            stake=ledger.balance(LedgerAccount.stake(account), currency).to_json(),
            escrow=Money(escrow, currency).to_json(),
        )


@router.get("/v1/accounts/{account_id}/history", summary="Transactions signed by an account")
def history(
    request: Request,
    account_id: str,
    reader: Reader,
    after: Annotated[int, Query(ge=0, le=INT_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> History:
    account = parse_account_id(account_id, field="account_id")
    service = service_of(request)
    check_own_account(service.state, account, reader)
    page = service.store.txs_by_signer(account, after_seq=after, limit=limit)
    found = [
        HistoryTx(seq=t.seq, type=t.type, ts=t.ts, digest=t.digest, body=t.envelope["body"])
        for t in page
    ]
    return History(account=account, txs=found, next=page[-1].seq if page else after)


@router.post(
    "/v1/faucet",
    summary="Mint test money (markets started with --devnet only)",
    response_model_exclude_unset=True,
    openapi_extra=signs("faucet"),
)
def faucet(request: Request, envelope: Signed) -> TxAnswer:
    return submit_typed(request, envelope, "faucet")


@router.post(
    "/v1/withdrawals",
    summary="Move earnings to the spendable balance",
    response_model_exclude_unset=True,
    openapi_extra=signs("withdraw"),
)
def withdraw(request: Request, envelope: Signed) -> TxAnswer:
    return submit_typed(request, envelope, "withdraw")
