"""``pasar.Client``: launch jobs and follow them to a verified result, over one market's API.

>>> client = pasar.Client()                  # argument → $PASAR_MARKET → $PASAR_HOME/config.toml
>>> job = client.launch("job.yaml")          # uploads inputs, signs and sends the order
>>> for chunk in job.logs(follow=True): print(chunk, end="")
>>> result = job.result("out/")              # waits, downloads, checks every hash

Requests are described once in :mod:`pasar.client.calls`; this module only performs them with
the blocking :class:`~pasar.client.transport.Transport`. :class:`pasar.AsyncClient`
(:mod:`pasar.client.aio`) has the same methods as coroutines.

The signing key is ``$PASAR_HOME/keys/<key>.key``, created on the first signed request if it
does not exist (see :func:`pasar.client.config.client_identity`); reads of public data (offers,
stats) never need it, reads of a job's private data (its order, logs, outputs) are signed with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pasar.client import calls
from pasar.client.calls import Call, Emit
from pasar.client.config import client_identity, market_url
from pasar.client.sealed import (
    KeyStore,
    LogOpener,
    Sealer,
    is_sealed,
    open_output,
    prepare_sealed,
)
from pasar.client.transport import (
    DEFAULT_TIMEOUT_S,
    Transport,
    inline_download,
    worth_probing,
)
from pasar.core.errors import PasarError
from pasar.crypto.hashing import sha256_hex
from pasar.crypto.identity import DEFAULT_KEY_NAME, Identity, key_path

if TYPE_CHECKING:
    # a job's results (merkle proofs) load where they are fetched, and the quote's models where
    # one is asked for: `pasar balance` and `pasar status` need neither (issue 14.10)
    from pasar.api.quote import QuoteResponse
    from pasar.client.defaults import Decided
    from pasar.client.results import JobResult, OutputFile, ShardResult
    from pasar.core.spec import JobSpec

T = TypeVar("T")
#: blobs a launch uploads at once (connections of the pool in use together)
UPLOAD_THREADS = 4


class Client:
    """A client of one market: a transport and (on first need) a signing key."""

    def __init__(
        self,
        market: str | None = None,
        *,
        key: str = DEFAULT_KEY_NAME,
        home: str | os.PathLike[str] | None = None,
        identity: Identity | None = None,
        transport: Transport | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.url = transport.base_url if transport else market_url(market, home=home)
        self.transport = transport or Transport(self.url, timeout_s=timeout_s, home=home)
        self._identity = identity
        self._key = key
        self._home = home
        self.keys = KeyStore(home)  # sealed jobs' data keys
        self._sealers: list[Sealer] = []  # one per sealed job this client launched

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for sealer in self._sealers:  # before the transport they use goes away
            sealer.stop()
        self.transport.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

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
        """This client's account if it has a key already (looking never creates one)."""
        if self._identity is None and not key_path(self._key, self._home).exists():
            return None
        return self.account_id

    # -- performing calls --------------------------------------------------------------------------

    def _call(self, call: Call[T]) -> T:
        """Perform one call, signed by this client's key where it must be."""
        signer = self.identity if call.body is not None or call.signed else None
        return self.transport.perform(call, signer)

    def _drive(self, steps: Generator[Call[Any], Any, T]) -> T:
        reply: Any = None
        while True:
            try:
                call = steps.send(reply)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            reply = self._call(call)

    # -- jobs --------------------------------------------------------------------------------------

    def launch(
        self,
        spec: object,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        ttl_s: int | None = None,
        data: Mapping[str, bytes] | None = None,
    ) -> Job:
        """Upload the spec's inputs, then sign and send the order (the market escrows its max).

        ``spec`` is a :class:`~pasar.core.spec.JobSpec`, a mapping of its fields, or the path of
        a YAML file. Local paths are named in the job as :mod:`pasar.client.inputs` describes.
        ``ttl_s`` is how long the order may wait for a provider (the market's default: 10 min).
        ``data``: inputs given as bytes, by name: an ``inputs`` entry that is one of its keys
        is not read from disk.
        """
        # the spec's modules are imported here, not with the client: `pasar balance` needs none
        from pasar.client.inputs import collect_inputs, private_part_of, uploads_of
        from pasar.core.private_part import order_fields

        decided = self.decide(spec, base_dir=base_dir)
        job, base = decided.spec, decided.base
        files = collect_inputs(job, base, data)
        if job.privacy == "sealed":  # only ciphertext leaves this machine
            sealed = prepare_sealed(job, files, self._upload)
            self.keys.save(sealed.fields["private"], sealed.key)
            reply = self._call(calls.create_order(sealed.fields, ttl_s))
            order_id = reply.created()
            self._sealers.append(Sealer(self._call, order_id, sealed.key).start())
            return Job(self, order_id, decided.decided, feed_next=reply.next)
        private = private_part_of(job, files)
        uploads = uploads_of(files, private)
        self._upload_all(uploads.separate)
        reply = self._call(calls.create_order(order_fields(job, private), ttl_s, uploads.attached))
        return Job(self, reply.created(), decided.decided, feed_next=reply.next)

    def decide(self, spec: object, *, base_dir: str | os.PathLike[str] | None = None) -> Decision:
        """The complete spec :meth:`launch` would sign for ``spec``, and what was decided for
        it: a price cap from the market's quote × ``price_margin`` and ``default_duration``
        (``pasar config``) where the spec sets none; a spec with ``resources.alternatives`` is
        sent with them all, each quoted to say which providers fit it
        (:mod:`pasar.client.defaults`). A complete :class:`JobSpec` costs no request."""
        from pasar.client.defaults import Settings, decide_steps, needs_deciding
        from pasar.client.inputs import load_draft_job
        from pasar.core.spec import JobSpec
        from pasar.crypto.identity import pasar_home

        if isinstance(spec, JobSpec):  # complete (alternatives are the market's to choose)
            return Decision(spec, Path(base_dir) if base_dir is not None else Path.cwd(), None)
        draft, base = load_draft_job(spec, base_dir)
        if not needs_deciding(draft):
            job = draft.spec()
            return Decision(job, base, None)
        settings = Settings.read(pasar_home(self._home))
        decided = self._drive(decide_steps(draft, settings, self.known_account()))
        return Decision(decided.spec, base, decided)

    def quote(
        self, spec: object, *, base_dir: str | os.PathLike[str] | None = None
    ) -> QuoteResponse:
        """What the market would do with an order for ``spec`` now, without taking it: the
        escrow it would lock, the offers that fit, the one it would pick, the price, and why
        every other provider is out. ``spec`` as for :meth:`launch`; nothing is uploaded."""
        from pasar.client.defaults import quote_data

        return self._call(calls.quote(quote_data(spec, base_dir, self._home), self.known_account()))

    def _upload_all(self, items: list[tuple[str, Path | bytes]]) -> None:
        """Upload blobs :data:`UPLOAD_THREADS` at a time: a remote call's payload and its
        private part go up in one round trip's time instead of two (a tenth of a trivial
        call), and a job's many inputs over several connections."""
        if len(items) <= 1:
            for sha256, content in items:
                self._upload(sha256, content)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(UPLOAD_THREADS, len(items)), "pasar-upload") as pool:
            for future in [pool.submit(self._upload, sha, content) for sha, content in items]:
                future.result()  # the first failure is raised; the others finish or fail too

    def _upload(self, sha256: str, content: Path | bytes) -> None:
        """Store ``content`` under ``sha256`` unless this account already did (a signed HEAD
        answers 200 only to those who may read the blob: anyone else uploads the bytes)."""
        path = f"/v1/blobs/{sha256}"
        if worth_probing(content):
            try:
                self.transport.request("HEAD", path, signer=self.identity)
                return  # already there: the address is the content
            except PasarError as err:
                if err.status != 404:
                    raise
        if isinstance(content, bytes):
            self.transport.request("PUT", path, signer=self.identity, content=content)
        else:
            self.transport.upload(path, content, signer=self.identity)

    def job(self, order_id: str) -> Job:
        """A handle on an existing order (no request is made)."""
        return Job(self, order_id)

    def jobs(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """This account's orders, newest first (``status``: open, running, done, …)."""
        orders = self._call(calls.list_orders(self.account_id, status, limit))["orders"]
        return list(orders)

    # -- the market --------------------------------------------------------------------------------

    def offers(
        self,
        query: str = "",
        *,
        order: str | None = None,
        limit: int = 100,
        include_offline: bool = False,
    ) -> list[dict[str, Any]]:
        """Offers matching the query language (``"gpu=A100:2 dph<1.5"``), sorted by ``order``
        (``"dph,score-"``: price up, then score down). Only providers that take work and were
        heard from lately, unless ``include_offline`` (each row says ``online``)."""
        return list(self._call(calls.offers(query, order, limit, include_offline))["offers"])

    def gpus(self) -> list[dict[str, Any]]:
        """GPU models on the network: count, free, median ask and lease price per hour."""
        return list(self.stats()["models"])

    def stats(self) -> dict[str, Any]:
        """Providers, GPUs, CPUs, utilization, jobs by status."""
        return dict(self._call(calls.stats()))

    def dashboard_url(self) -> str:
        """The market's web dashboard (``/ui``)."""
        return f"{self.transport.base_url}/ui"

    def dashboard_login_url(self) -> str:
        """A one-time link that signs this key in to the market's dashboard: the market's
        challenge signed with this client's key (:mod:`pasar.api.dashboard`). It is good for
        two minutes and once; the browser then holds a token for an hour."""
        challenge = self._call(calls.dashboard_challenge()).challenge
        return login_url(self.transport.base_url, challenge, self.identity)

    def balance(self, account: str | None = None) -> dict[str, Any]:
        """Spendable balance, earnings, stake and escrow of ``account`` (default: this key's)."""
        return self._call(calls.account(account or self.account_id)).wire()

    def explain(self, order_id: str) -> dict[str, Any]:
        """Why each provider did or did not take an order."""
        return dict(self._call(calls.explain(order_id)))

    def faucet(self, amount: str) -> dict[str, Any]:
        """Mint test money into this account (markets started with ``--devnet`` only)."""
        return self._call(calls.faucet(amount)).wire()

    def check(self, check_id: str) -> dict[str, Any]:
        """One verifier's check of a lease (a lease view lists its ``checks``): who re-ran it,
        whether it agreed, its root (for the order's client, providers and verifiers)."""
        return self._call(calls.check(check_id)).wire()


def login_url(base_url: str, challenge: str, identity: Identity) -> str:
    """The dashboard's sign-in link for ``challenge``, signed by ``identity``."""
    from urllib.parse import urlencode

    from pasar.api.dashboard import LOGIN_PATH, login_message

    sig = identity.sign(login_message(challenge)).hex()
    query = urlencode({"challenge": challenge, "account": identity.account_id, "sig": sig})
    return f"{base_url}{LOGIN_PATH}?{query}"


@dataclass(frozen=True)
class Decision:
    """What :meth:`Client.decide` returns: the spec to sign, its inputs' base folder, and
    what the client decided for it (None: the spec said everything)."""

    spec: JobSpec
    base: Path
    decided: Decided | None


class Job:
    """A handle on one order: its status, logs, result; cancel it or wait for its end.

    ``decided`` (for a job this client launched) says what was decided for its spec: the
    price cap and duration a spec without them got, the alternative the market would take now
    (:class:`pasar.client.defaults.Decided`); None when the spec said everything."""

    def __init__(
        self,
        client: Client,
        order_id: str,
        decided: Decided | None = None,
        *,
        feed_next: int | None = None,
    ) -> None:
        self.client = client
        self.id = order_id
        self.decided = decided
        # the feed's cursor the order's creation answered: a wait long-polls from it at once
        self.feed_next = feed_next

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    def status(self) -> dict[str, Any]:
        """The market's view of the order: status, leases (with receipts and bills), escrow."""
        return dict(self.client._call(calls.get_order(self.id)))

    def wait(
        self,
        timeout: float | None = None,
        *,
        watch: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Block until the order is done, expired or cancelled (long polls, no busy loop);
        returns its last view. ``timeout`` seconds: raise ``wait_timeout`` instead. ``watch``
        sees every view of the order on the way (a progress bar's ``update``)."""
        waiting = calls.wait_for_end(self.id, timeout, watch=watch, after=self.feed_next)
        return self.client._drive(waiting)

    def logs(self, follow: bool = False, *, shard: int = 0) -> Iterator[str]:
        """The output of one shard's job, in chunks as the market has them. With ``follow``,
        keeps streaming until the shard's lease ends (following a re-queued shard's new lease)."""
        steps = calls.follow_logs(self.id, shard, follow)
        opener: LogOpener | None = None
        reply: Any = None
        while True:
            try:
                step = steps.send(reply)
            except StopIteration:
                return
            if isinstance(step, Emit):
                reply = None
                if opener is None:
                    order = self.status()
                    opener = LogOpener(self.client.keys.of(order)) if is_sealed(order) else None
                yield step.text if opener is None else opener.feed(step.text)
            else:
                reply = self.client._call(step)

    def result(self, dest: str | os.PathLike[str], timeout: float | None = None) -> JobResult:
        """Wait for the end, then download every output into ``dest``, verified against the
        receipt (see :mod:`pasar.client.results` for the checks and the shard layout)."""
        return self._fetch(self.wait(timeout), dest, held=False)

    def fetch(
        self, order: dict[str, Any], dest: str | os.PathLike[str], *, partial: bool = False
    ) -> JobResult:
        """:meth:`result` for an order view already waited for (``wait()``'s), without
        asking the market again; ``partial``: only the shards that settled, not a refusal."""
        return self._fetch(order, dest, held=False, partial=partial)

    def _fetch(
        self,
        order: dict[str, Any],
        dest: str | os.PathLike[str],
        *,
        held: bool,
        partial: bool = False,
    ) -> JobResult:
        from pasar.client.results import JobResult, accept, plan

        root = Path(dest)
        shards = plan(order, root, held=held, partial=partial)
        for result, _ in shards:  # a shard's folder is there even when it has no files
            result.dir.mkdir(parents=True, exist_ok=True)
        key = self.client.keys.of(order) if is_sealed(order) else None
        inline = order.get("inline_outputs")  # small outputs that came with the view
        for _, files in shards:
            for item in files:
                got = _inline_output(inline, item)
                if got is None:  # not inline, or not what the receipt says: fetched
                    got = self.client.transport.download(
                        item.blobs, item.dest, signer=self.client.identity
                    )
                accept(item, *got)
                if key is not None:  # the ciphertext was the receipt's; now its plaintext
                    open_output(item.dest, key, item.plain_sha256, f"output {item.path!r}")
        return JobResult(self.id, root, tuple(result for result, _ in shards))

    def read(
        self, order: dict[str, Any], path: str, *, partial: bool = False
    ) -> list[tuple[ShardResult, bytes | None]]:
        """Each settled shard's output ``path`` as bytes (None where its receipt lists no such
        file), for an order view already waited for, verified against the receipt as
        :meth:`fetch` verifies a file: a remote call's result, read without touching the disk
        (a folder made and removed per call cost milliseconds on a busy disk). The bytes the
        view carried inline, else downloaded; a sealed job's go through :meth:`fetch`."""
        from pasar.client.results import output_in_each_shard

        if is_sealed(order):  # decrypted on disk, where its plaintext hash is checked
            import tempfile

            with tempfile.TemporaryDirectory(prefix="pasar-read-") as tmp:
                fetched = self.fetch(order, tmp, partial=partial)
                return [(s, _read_if_there(s.dir / path)) for s in fetched.shards]
        inline = order.get("inline_outputs")
        return [
            (result, None if item is None else self._bytes_of(item, inline))
            for result, item in output_in_each_shard(order, path, partial=partial)
        ]

    def _bytes_of(self, item: OutputFile, inline: object) -> bytes:
        from pasar.client.results import check_output, inline_bytes

        data = inline_bytes(inline, item)
        if data is None or sha256_hex(data) != item.sha256:  # not inline, or not as signed
            transport, signer = self.client.transport, self.client.identity
            data = b"".join(transport.request("GET", b, signer=signer).content for b in item.blobs)
        check_output(item, sha256_hex(data), len(data))
        return data

    def review(self, dest: str | os.PathLike[str], timeout: float | None = None) -> JobResult:
        """``verification: approve``: wait until every shard's result is in (held for your
        approval, or already settled), then download each into ``dest`` as :meth:`result`
        does, verified against its receipt, so you can judge it before :meth:`approve` or
        :meth:`reject`."""
        order = self.client._drive(calls.wait_for_end(self.id, timeout, review=True))
        return self._fetch(order, dest, held=True)

    def cancel(self) -> dict[str, Any]:
        """Stop the job: running leases are billed for verified seconds, the rest refunded."""
        return self.client._call(calls.cancel_order(self.id)).wire()

    def approve(self, shard: int | None = None) -> dict[str, Any]:
        """Approve one shard's held result (``verification: approve``), or every held one: its
        provider is paid for its verified time."""
        return self.client._call(calls.approve(self.id, shard)).wire()

    def reject(self, shard: int, reason: str) -> dict[str, Any]:
        """Reject one shard's held result: its run is not paid and the shard is re-run free on
        another provider (the job ends, refunded, after the preset's ``max_reruns``)."""
        return self.client._call(calls.reject(self.id, shard, reason)).wire()

    def explain(self) -> dict[str, Any]:
        return self.client.explain(self.id)


def _read_if_there(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def _inline_output(inline: object, item: OutputFile) -> tuple[str, int, Path] | None:
    """An output the order's view carried inline (``inline_outputs``), written as a download
    (sha256, size, temporary file) if its bytes are what the receipt says; else None."""
    from pasar.client.results import inline_bytes

    data = inline_bytes(inline, item)
    if data is None:
        return None
    sha, size, tmp = inline_download(data, item.dest)
    if sha != item.sha256 or size != item.size:
        tmp.unlink(missing_ok=True)
        return None
    return sha, size, tmp
