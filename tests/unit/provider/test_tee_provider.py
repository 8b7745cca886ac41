"""The provider's attestation flow with a stand-in quote source (no TEE exists here): the
quote it asks for binds its key and the market's nonce, and ``--tee tdx`` on a machine without
a TEE refuses to start, saying so, before the market is asked."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from pasar.api import txs
from pasar.cli.main import main
from pasar.client.calls import Call
from pasar.crypto.identity import Identity
from pasar.provider.tee_attest import attest
from pasar.tee.binding import binds
from pasar.tee.sources import detect


class FakeSource:
    """Stands in for a TEE: returns the report data it was given as the "quote"."""

    name = "fake"

    def __init__(self) -> None:
        self.asked: list[bytes] = []

    def available(self) -> bool:
        return True

    def quote(self, report_data: bytes) -> bytes:
        self.asked.append(report_data)
        return b"QUOTE" + report_data


def test_attest_binds_the_key_and_the_market_nonce() -> None:
    me = Identity.generate()
    nonce = "cd" * 64
    sent: list[Call[Any]] = []

    def perform(call: Call[Any]) -> Any:
        sent.append(call)
        if call.method == "GET":
            return txs.TeeNonce(
                provider=me.account_id, nonce=nonce, nonce_issued_at=5, valid_for_ms=1
            )
        return {"tee": "TDX", "tcb_status": "UpToDate"}

    source = FakeSource()
    answer = attest(perform, me, source, collateral_of=lambda q: '{"c": 1}')
    assert answer["tee"] == "TDX"
    (report_data,) = source.asked
    assert binds(report_data, me.public_key, bytes.fromhex(nonce))
    body = sent[-1].body
    assert isinstance(body, txs.TeePresent)
    assert base64.b64decode(body.quote) == b"QUOTE" + report_data
    assert (body.nonce, body.nonce_issued_at, body.collateral) == (nonce, 5, '{"c": 1}')
    assert sent[-1].path == f"/v1/providers/{me.account_id}/attestation"


@pytest.mark.skipif(detect("auto") is not None, reason="this machine has a TEE")
def test_tee_tdx_without_a_tee_refuses_to_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(tmp_path)]
    code = main(["provider", "start", "--market", "http://127.0.0.1:9", *home, "--tee", "tdx"])
    assert code == 2
    assert "no TEE on this machine" in capsys.readouterr().err


class BrokenSource(FakeSource):
    def quote(self, report_data: bytes) -> bytes:
        raise OSError("the TEE device is busy")


def test_a_failed_attestation_is_fatal_only_when_tdx_was_asked_for(tmp_path: Path) -> None:
    import dataclasses

    from pasar.provider.agent import Agent, AgentConfig

    agent = Agent(AgentConfig(market="http://127.0.0.1:9", home=tmp_path, tee="auto"))
    agent.quote_source = BrokenSource()
    nonce = txs.TeeNonce(provider=agent.identity.account_id, nonce="ab" * 64, nonce_issued_at=1,
                         valid_for_ms=1)  # fmt: skip
    agent.api.perform = lambda call: nonce  # type: ignore[method-assign]
    agent._attest()  # auto: logged, the provider serves without an attestation
    assert agent.attestation is None
    agent.config = dataclasses.replace(agent.config, tee="tdx")
    with pytest.raises(OSError, match="busy"):
        agent._attest()
