"""``pasar.AsyncClient``: :class:`pasar.Client`'s methods as coroutines, for asyncio programs.

Same names, same arguments, same results and errors: both clients drive the request
descriptions and procedures of :mod:`pasar.client.calls`; only the transport differs
(:class:`~pasar.client.transport.AsyncTransport` over ``httpx.AsyncClient``). File hashing
before an upload runs in a worker thread, so a launch does not stall the event loop.

>>> async with pasar.AsyncClient() as client:
...     job = await client.launch("job.yaml")
...     async for chunk in job.logs(follow=True): print(chunk, end="")
...     result = await job.result("out/")
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pasar.api.quote import QuoteResponse
from pasar.client import calls
from pasar.client.calls import Call, Emit
from pasar.client.client import UPLOAD_THREADS, Decision, login_url
from pasar.client.config import client_identity, market_url
from pasar.client.defaults import Decided
from pasar.client.inputs import collect_inputs, load_draft_job, private_part_of, uploads_of
from pasar.client.results import (
    JobResult,
    OutputFile,
    ShardResult,
    accept,
    check_output,
    inline_bytes,
    output_in_each_shard,
    plan,
)
from pasar.client.sealed import is_sealed
from pasar.client.transport import DEFAULT_TIMEOUT_S, AsyncTransport, worth_probing
from pasar.core.errors import PasarError
from pasar.core.private_part import order_fields
from pasar.crypto.hashing import sha256_hex
from pasar.crypto.identity import DEFAULT_KEY_NAME, Identity, key_path

T = TypeVar("T")


class AsyncClient:
    """A client of one market, with coroutine methods; see :class:`pasar.Client`."""

    def __init__(
        self,
        market: str | None = None,
        *,
        key: str = DEFAULT_KEY_NAME,
        home: str | os.PathLike[str] | None = None,
        identity: Identity | None = None,
        transport: AsyncTransport | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.url = transport.base_url if transport else market_url(market, home=home)
        self.transport = transport or AsyncTransport(self.url, timeout_s=timeout_s, home=home)
        self._identity = identity
        self._key = key
        self._home = home

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.transport.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r})"

    @property
    def identity(self) -> Identity:
        """The signing key (loaded, or created, on first use)."""
        if self._identity is None:
            self._identity = client_identity(self._key, home=self._home)
        return self._identity

    @property
    def account_id(self) -> str:
        return self.identity.account_id

    def known_account(self) -> str | None:
        """See :meth:`pasar.Client.known_account`."""
        if self._identity is None and not key_path(self._key, self._home).exists():
            return None
        return self.account_id

    # -- performing calls --------------------------------------------------------------------------

    async def _call(self, call: Call[T]) -> T:
        """Perform one call, signed by this client's key where it must be."""
        signer = self.identity if call.body is not None or call.signed else None
        return await self.transport.perform(call, signer)

    async def _drive(self, steps: Generator[Call[Any], Any, T]) -> T:
        reply: Any = None
        while True:
            try:
                call = steps.send(reply)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            reply = await self._call(call)

    # -- jobs --------------------------------------------------------------------------------------

    async def launch(
        self,
        spec: object,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        ttl_s: int | None = None,
        data: Mapping[str, bytes] | None = None,
    ) -> AsyncJob:
        """See :meth:`pasar.Client.launch`."""
        decision = await self.decide(spec, base_dir=base_dir)
        job, base = decision.spec, decision.base
        if job.privacy == "sealed":
            raise PasarError(
                "the async client does not launch sealed jobs yet",
                code="sealed_unsupported",
                field="privacy",
                hint="launch it with pasar.Client (or `pasar launch --wait`), which seals the "
                "data key to each provider while the job runs",
            )
        files = await asyncio.to_thread(collect_inputs, job, base, data)
        private = private_part_of(job, files)
        uploads = await asyncio.to_thread(uploads_of, files, private)
        limit = asyncio.Semaphore(UPLOAD_THREADS)  # as many at once as the sync client

        async def upload(sha256: str, content: Path | bytes) -> None:
            async with limit:
                await self._upload(sha256, content)

        await asyncio.gather(*(upload(sha, content) for sha, content in uploads.separate))
        fields = order_fields(job, private)
        reply = await self._call(calls.create_order(fields, ttl_s, uploads.attached))
        return AsyncJob(self, reply.created(), decision.decided, feed_next=reply.next)

    async def quote(
        self, spec: object, *, base_dir: str | os.PathLike[str] | None = None
    ) -> QuoteResponse:
        """See :meth:`pasar.Client.quote`."""
        from pasar.client.defaults import quote_data

        data = quote_data(spec, base_dir, self._home)
        return await self._call(calls.quote(data, self.known_account()))

    async def decide(
        self, spec: object, *, base_dir: str | os.PathLike[str] | None = None
    ) -> Decision:
        """See :meth:`pasar.Client.decide`."""
        from pasar.client.defaults import Settings, decide_steps, needs_deciding
        from pasar.core.spec import JobSpec
        from pasar.crypto.identity import pasar_home

        if isinstance(spec, JobSpec):  # complete (alternatives are the market's to choose)
            return Decision(spec, Path(base_dir) if base_dir is not None else Path.cwd(), None)
        draft, base = load_draft_job(spec, base_dir)
        if not needs_deciding(draft):
            return Decision(draft.spec(), base, None)
        settings = Settings.read(pasar_home(self._home))
        decided = await self._drive(decide_steps(draft, settings, self.known_account()))
        return Decision(decided.spec, base, decided)

    async def _upload(self, sha256: str, content: Path | bytes) -> None:
        """See :meth:`pasar.Client._upload`."""
        path = f"/v1/blobs/{sha256}"
        if worth_probing(content):
            try:
                await self.transport.request("HEAD", path, signer=self.identity)
                return  # already there: the address is the content
            except PasarError as err:
                if err.status != 404:
                    raise
        if isinstance(content, bytes):
            await self.transport.request("PUT", path, signer=self.identity, content=content)
        else:
            await self.transport.upload(path, content, signer=self.identity)

    def job(self, order_id: str) -> AsyncJob:
        """A handle on an existing order (no request is made)."""
        return AsyncJob(self, order_id)

    async def jobs(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """See :meth:`pasar.Client.jobs`."""
        orders = (await self._call(calls.list_orders(self.account_id, status, limit)))["orders"]
        return list(orders)

    # -- the market --------------------------------------------------------------------------------

    async def offers(
        self,
        query: str = "",
        *,
        order: str | None = None,
        limit: int = 100,
        include_offline: bool = False,
    ) -> list[dict[str, Any]]:
        """See :meth:`pasar.Client.offers`."""
        call = calls.offers(query, order, limit, include_offline)
        return list((await self._call(call))["offers"])

    async def gpus(self) -> list[dict[str, Any]]:
        """See :meth:`pasar.Client.gpus`."""
        return list((await self.stats())["models"])

    def dashboard_url(self) -> str:
        """See :meth:`pasar.Client.dashboard_url`."""
        return f"{self.transport.base_url}/ui"

    async def dashboard_login_url(self) -> str:
        """See :meth:`pasar.Client.dashboard_login_url`."""
        challenge = (await self._call(calls.dashboard_challenge())).challenge
        return login_url(self.transport.base_url, challenge, self.identity)

    async def stats(self) -> dict[str, Any]:
        """See :meth:`pasar.Client.stats`."""
        return dict(await self._call(calls.stats()))

    async def balance(self, account: str | None = None) -> dict[str, Any]:
        """See :meth:`pasar.Client.balance`."""
        return (await self._call(calls.account(account or self.account_id))).wire()

    async def explain(self, order_id: str) -> dict[str, Any]:
        """See :meth:`pasar.Client.explain`."""
        return dict(await self._call(calls.explain(order_id)))

    async def check(self, check_id: str) -> dict[str, Any]:
        """See :meth:`pasar.Client.check`."""
        return (await self._call(calls.check(check_id))).wire()

    async def faucet(self, amount: str) -> dict[str, Any]:
        """See :meth:`pasar.Client.faucet`."""
        return (await self._call(calls.faucet(amount))).wire()


class AsyncJob:
    """See :class:`pasar.client.client.Job`; the same methods as coroutines."""

    def __init__(
        self,
        client: AsyncClient,
        order_id: str,
        decided: Decided | None = None,
        *,
        feed_next: int | None = None,
    ) -> None:
        self.client = client
        self.id = order_id
        self.decided = decided
        self.feed_next = feed_next  # see Job.feed_next

    def __repr__(self) -> str:
        return f"AsyncJob({self.id!r})"

    async def status(self) -> dict[str, Any]:
        return dict(await self.client._call(calls.get_order(self.id)))

    async def wait(
        self,
        timeout: float | None = None,
        *,
        watch: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        waiting = calls.wait_for_end(self.id, timeout, watch=watch, after=self.feed_next)
        return await self.client._drive(waiting)

    async def logs(self, follow: bool = False, *, shard: int = 0) -> AsyncIterator[str]:
        steps = calls.follow_logs(self.id, shard, follow)
        reply: Any = None
        while True:
            try:
                step = steps.send(reply)
            except StopIteration:
                return
            if isinstance(step, Emit):
                reply = None
                yield step.text
            else:
                reply = await self.client._call(step)

    async def result(self, dest: str | os.PathLike[str], timeout: float | None = None) -> JobResult:
        return await self._fetch(await self.wait(timeout), dest, held=False)

    async def fetch(
        self, order: dict[str, Any], dest: str | os.PathLike[str], *, partial: bool = False
    ) -> JobResult:
        """See :meth:`pasar.client.client.Job.fetch`."""
        return await self._fetch(order, dest, held=False, partial=partial)

    async def read(
        self, order: dict[str, Any], path: str, *, partial: bool = False
    ) -> list[tuple[ShardResult, bytes | None]]:
        """See :meth:`pasar.client.client.Job.read` (a sealed job's outputs: not here, as
        the async client does not launch sealed jobs)."""
        if is_sealed(order):
            raise PasarError(
                "the async client does not read a sealed job's outputs",
                code="sealed_unsupported",
                hint="read it with pasar.Client, which holds the job's data key",
            )
        inline = order.get("inline_outputs")
        return [
            (result, None if item is None else await self._bytes_of(item, inline))
            for result, item in output_in_each_shard(order, path, partial=partial)
        ]

    async def _bytes_of(self, item: OutputFile, inline: object) -> bytes:
        data = inline_bytes(inline, item)
        if data is None or sha256_hex(data) != item.sha256:  # not inline, or not as signed
            transport, signer = self.client.transport, self.client.identity
            answers = [await transport.request("GET", b, signer=signer) for b in item.blobs]
            data = b"".join(answer.content for answer in answers)
        check_output(item, sha256_hex(data), len(data))
        return data

    async def review(self, dest: str | os.PathLike[str], timeout: float | None = None) -> JobResult:
        order = await self.client._drive(calls.wait_for_end(self.id, timeout, review=True))
        return await self._fetch(order, dest, held=True)

    async def _fetch(
        self,
        order: dict[str, Any],
        dest: str | os.PathLike[str],
        *,
        held: bool,
        partial: bool = False,
    ) -> JobResult:
        root = Path(dest)
        shards = plan(order, root, held=held, partial=partial)
        for result, _ in shards:  # a shard's folder is there even when it has no files
            result.dir.mkdir(parents=True, exist_ok=True)
        for _, files in shards:
            for item in files:
                sha, size, tmp = await self.client.transport.download(
                    item.blobs, item.dest, signer=self.client.identity
                )
                accept(item, sha, size, tmp)
        return JobResult(self.id, root, tuple(result for result, _ in shards))

    async def cancel(self) -> dict[str, Any]:
        return (await self.client._call(calls.cancel_order(self.id))).wire()

    async def approve(self, shard: int | None = None) -> dict[str, Any]:
        return (await self.client._call(calls.approve(self.id, shard))).wire()

    async def reject(self, shard: int, reason: str) -> dict[str, Any]:
        return (await self.client._call(calls.reject(self.id, shard, reason))).wire()

    async def explain(self) -> dict[str, Any]:
        return await self.client.explain(self.id)
