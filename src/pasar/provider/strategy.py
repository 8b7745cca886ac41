"""How a provider prices its machine: a price table from the command line, and a bidding strategy.

**The table** (:class:`PriceTable`) comes from ``--price MODEL=PRICE`` (per GPU-hour, repeated)
and ``--price-cpu-hour X`` (per CPU-core-hour). It is the provider's one source of prices:

* the book (io.net) gets it as standing asks (:meth:`Strategy.asks`);
* auctions (Akash) get a bid per order from the strategy (:meth:`Strategy.bid`);
* performance pricing (Render) gets a rate per score-hour derived from it
  (:meth:`Strategy.rate_per_score_hour`), so a provider quoting by benchmark charges what its
  table says the benchmarked hardware costs.

**The strategies** follow Akash's provider bid engine:

* ``scale`` (:class:`ScaleStrategy`): price = Σ resource × unit price, i.e. the matched GPU
  model's price × GPU count + the CPU-core price × CPUs. With no CPU price a GPU lease's CPUs
  come with the GPUs (as in the book); with no price for the matched model it does not bid.
* ``script:PATH`` (:class:`ScriptStrategy`): Akash's price-script contract. The script gets the
  request as one JSON object on stdin (see :func:`script_request`: what was asked, the GPU model
  that actually matched, the max price, the currency, the duration, and what the table would
  charge), prints one decimal price on stdout, and exits 0. A non-zero exit, anything else on
  stdout, or running past ``timeout_s`` means *do not bid*; the reason is logged.

Either way a bid above the order's max, in another currency, or not positive is not made: the
market would refuse it. Nothing here returns a float.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.pricing.book import Asks
from pasar.core.resources import Allocation, GpuModel, GpuSelector, ResourceRequest, fmt_qty

__all__ = [
    "SCRIPT_CONTRACT",
    "PriceTable",
    "ScaleStrategy",
    "ScriptStrategy",
    "Strategy",
    "StrategyError",
    "make_strategy",
    "script_request",
]

log = logging.getLogger(__name__)

SCRIPT_CONTRACT = "pasar-price-script/1"
DEFAULT_SCRIPT_TIMEOUT_S = 5.0
_MAX_OUTPUT = 4096  # a price is a few bytes; more is a script printing something else
_PRICE_EXAMPLE = "--price RTX4090=0.35 --price A100=1.2"


class StrategyError(PasarError):
    """A bad ``--price``/``--price-cpu-hour``/``--strategy`` flag: the agent exits on it."""


# -- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceTable:
    """Per GPU-hour prices by model and a per CPU-core-hour price, all in ``currency``."""

    currency: str
    asks: Asks = field(default_factory=Asks)

    def __post_init__(self) -> None:
        if self.asks.currency not in {None, self.currency}:
            raise StrategyError(
                f"prices are in {self.asks.currency}, the market pays {self.currency}",
                code="currency_mismatch",
                field="--price",
            )

    @classmethod
    def from_flags(
        cls, prices: Iterable[str] = (), cpu_hour: str | None = None, *, currency: str
    ) -> PriceTable:
        """``from_flags(["RTX4090=0.35", "A100=1.2 USDC"], "0.02", currency="USDC")``.

        Model names are normalized (``rtx-4090`` is ``RTX4090``); a model given twice, an
        unknown model, or a price that is not a positive amount in ``currency`` is an error
        naming the flag.
        """
        gpu: dict[str, Money] = {}
        given: dict[str, str] = {}
        for flag in prices:
            name, sep, amount = flag.partition("=")
            if not sep or not name.strip() or not amount.strip():
                raise StrategyError(
                    f"--price {flag!r}: expected MODEL=PRICE",
                    code="invalid_flag",
                    field="--price",
                    hint=f"price per GPU-hour by model, e.g. {_PRICE_EXAMPLE}",
                )
            try:
                key = GpuSelector.parse(name.strip()).canonical
            except PasarError as exc:
                raise StrategyError(
                    f"--price {flag!r}: {exc.message}",
                    code=exc.code,
                    field="--price",
                    hint=exc.hint,
                ) from exc
            if key in gpu:
                raise StrategyError(
                    f"--price {flag!r}: {key} is already priced by --price {given[key]!r}",
                    code="invalid_flag",
                    field="--price",
                    hint="give each GPU model one price",
                )
            gpu[key] = _price(amount.strip(), currency, f"--price {flag!r}", "--price")
            given[key] = flag
        cpu_core = (
            None
            if cpu_hour is None
            else _price(cpu_hour, currency, f"--price-cpu-hour {cpu_hour!r}", "--price-cpu-hour")
        )
        return cls(currency, Asks(gpu, cpu_core))

    @property
    def empty(self) -> bool:
        return not self.asks.prices()

    def unit_for(self, model: GpuModel) -> Money | None:
        """Per GPU-hour for ``model``, most specific entry first (``A100-80GB`` before
        ``A100``); None when the table does not price it."""
        return self.asks.unit_for(model)

    def price(self, allocation: Allocation) -> Money | None:
        """Akash's scale: GPUs × model price + CPUs × CPU-core price, per hour, or None.

        None when a GPU lease's model has no price, or a CPU-only lease has no CPU price.
        Fractional CPUs round down to a micro-unit (the code base's one rounding rule).
        """
        total = Money.zero(self.currency)
        if allocation.gpu is not None:
            unit = self.unit_for(allocation.gpu.model)
            if unit is None:
                return None
            total += unit * allocation.gpu.count
        elif self.asks.cpu_core is None:
            return None
        if self.asks.cpu_core is not None:
            total += self.asks.cpu_core.scale(Fraction(allocation.cpus))
        return total


def _price(text: str, currency: str, where: str, flag: str) -> Money:
    try:
        amount = Money.parse(text, default_currency=currency, field=flag)
    except PasarError as exc:
        raise StrategyError(
            f"{where}: {exc.message}", code=exc.code, field=flag, hint=exc.hint
        ) from exc
    if amount.currency != currency:
        raise StrategyError(
            f"{where}: the market pays in {currency}, not {amount.currency}",
            code="currency_mismatch",
            field=flag,
            hint=f"write the price in {currency}, or leave the currency out",
        )
    if amount.micros <= 0:
        raise StrategyError(f"{where}: a price must be positive", code="invalid_flag", field=flag)
    return amount


# -- strategies ------------------------------------------------------------------------------------


class Strategy(ABC):
    """A provider's pricing: standing asks and a score-hour rate from its table, and bids."""

    name: ClassVar[str]
    table: PriceTable | None

    def asks(self) -> Asks:
        """The standing asks for the book (empty when the table is)."""
        return self.table.asks if self.table is not None else Asks()

    def rate_per_score_hour(
        self, score: int, *, gpu: GpuModel | None, cpus: int | Decimal
    ) -> Money | None:
        """The rate for performance pricing: the table's hourly price of the hardware the
        benchmark ran on, divided by its score, rounded down to a micro-unit.

        Pass ``gpu`` = the model of the benchmarked device (``cuda:0`` is slot 0) for a GPU
        score, or ``gpu=None`` and ``cpus`` = the CPUs the CPU benchmark used (all of them).
        The market then quotes ``rate × score``, which is the table price less under one
        micro-unit per score point. None when the table has no price for that hardware, or
        the price is below one micro-unit per score point.
        """
        if self.table is None or isinstance(score, bool) or score <= 0:
            return None
        if gpu is not None:
            hourly = self.table.unit_for(gpu)
        elif self.table.asks.cpu_core is not None:
            hourly = self.table.asks.cpu_core.scale(Fraction(Decimal(cpus)))
        else:
            hourly = None
        if hourly is None:
            return None
        rate = hourly.scale(1, score)
        if rate.micros <= 0:
            log.warning("no rate per score-hour: %s for score %d is under 1 micro", hourly, score)
            return None
        return rate

    @abstractmethod
    def bid(
        self,
        request: ResourceRequest,
        allocation: Allocation,
        max_price: Money,
        *,
        duration_s: int | None = None,
    ) -> Money | None:
        """The price per hour to bid for one lease, or None: do not bid (reason logged)."""


def _no_bid(strategy: str, reason: str) -> None:
    log.info("no bid (%s): %s", strategy, reason)


def _acceptable(strategy: str, price: Money, max_price: Money) -> Money | None:
    """``price`` when the market could accept it for an order paying at most ``max_price``."""
    if price.currency != max_price.currency:
        _no_bid(strategy, f"prices in {price.currency}, the order pays {max_price.currency}")
        return None
    if price.micros <= 0:
        _no_bid(strategy, f"price {price} is not positive")
        return None
    if price > max_price:
        _no_bid(strategy, f"price {price} is above the order's max {max_price}")
        return None
    return price


@dataclass(frozen=True)
class ScaleStrategy(Strategy):
    """Bid the table's price for the allocation (Akash's ``scale`` bid strategy)."""

    name: ClassVar[str] = "scale"
    table: PriceTable

    def bid(
        self,
        request: ResourceRequest,
        allocation: Allocation,
        max_price: Money,
        *,
        duration_s: int | None = None,
    ) -> Money | None:
        price = self.table.price(allocation)
        if price is None:
            what = allocation.gpu.model if allocation.gpu is not None else "CPU cores"
            _no_bid(self.name, f"no price for {what}")
            return None
        return _acceptable(self.name, price, max_price)


def script_request(
    request: ResourceRequest,
    allocation: Allocation,
    max_price: Money,
    *,
    duration_s: int | None,
    table: PriceTable | None,
) -> dict[str, Any]:
    """The JSON object a price script reads on stdin. Amounts and quantities are strings
    (decimal, never floats); ``gpu`` is null for a CPU-only lease::

        {"contract": "pasar-price-script/1", "currency": "USDC",
         "max_price_per_hour": "2.00", "duration_s": 3600,
         "request": {"gpu_count": 1, "gpu_models": ["A100"], "min_vram_gb": null,
                     "cpus": "8", "memory_gb": "64", "disk_gb": "100"},
         "gpu": {"model": "A100-80GB-SXM", "family": "A100", "vram_gb": 80,
                 "interface": "SXM", "count": 1},
         "cpus": "8", "memory_gb": "64", "disk_gb": "100",
         "table_price": "1.20"}

    ``request`` is what the client asked for (its GPU names are any-of selectors); ``gpu``,
    ``cpus``, ``memory_gb`` and ``disk_gb`` are what this provider would allocate;
    ``table_price`` is what ``scale`` would bid (null without a price for it).
    """
    table_price = table.price(allocation) if table is not None else None
    gpu = allocation.gpu
    return {
        "contract": SCRIPT_CONTRACT,
        "currency": max_price.currency,
        "max_price_per_hour": max_price.amount_str(),
        "duration_s": duration_s,
        "request": {
            "gpu_count": request.gpu_count,
            "gpu_models": [s.canonical for s in request.gpu_models],
            "min_vram_gb": request.min_vram_gb,
            "cpus": fmt_qty(request.cpus),
            "memory_gb": fmt_qty(request.memory_gb),
            "disk_gb": fmt_qty(request.disk_gb),
        },
        "gpu": None
        if gpu is None
        else {
            "model": gpu.model.canonical,
            "family": gpu.model.family,
            "vram_gb": gpu.model.vram_gb,
            "interface": None if gpu.model.interface is None else str(gpu.model.interface),
            "count": gpu.count,
        },
        "cpus": fmt_qty(allocation.cpus),
        "memory_gb": fmt_qty(allocation.memory_gb),
        "disk_gb": fmt_qty(allocation.disk_gb),
        "table_price": None
        if table_price is None or table_price.currency != max_price.currency
        else table_price.amount_str(),
    }


@dataclass(frozen=True)
class ScriptStrategy(Strategy):
    """Ask an executable for each bid (Akash's price-script contract; see the module doc).

    The script runs in its own process group, which is killed as a whole at ``timeout_s``,
    so a shell script's children cannot outlive it. ``bid`` blocks for up to ``timeout_s``:
    an asyncio caller should run it in a thread. Asks and the score-hour rate still come from
    ``table`` (none without one).
    """

    name: ClassVar[str] = "script"
    path: Path
    timeout_s: float = DEFAULT_SCRIPT_TIMEOUT_S
    table: PriceTable | None = None

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise StrategyError("the price script timeout must be positive", field="--strategy")

    def bid(
        self,
        request: ResourceRequest,
        allocation: Allocation,
        max_price: Money,
        *,
        duration_s: int | None = None,
    ) -> Money | None:
        who = f"script {self.path}"
        doc = script_request(
            request, allocation, max_price, duration_s=duration_s, table=self.table
        )
        outcome = self._run(json.dumps(doc).encode())
        if isinstance(outcome, str):
            _no_bid(who, outcome)
            return None
        text = outcome.decode("utf-8", "replace").strip()
        if len(outcome) > _MAX_OUTPUT or "\n" in text or not text:
            _no_bid(who, f"expected one price on stdout, got {_clip(text)!r}")
            return None
        try:
            price = Money.parse(text, default_currency=max_price.currency)
        except PasarError as exc:
            _no_bid(who, f"cannot read its output as a price: {exc.message}")
            return None
        return _acceptable(who, price, max_price)

    def _run(self, stdin: bytes) -> bytes | str:
        """The script's stdout, or why there is none (cannot start, timeout, non-zero exit)."""
        try:
            proc = subprocess.Popen(
                [str(self.path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            return f"cannot start: {exc.strerror or exc}"
        try:
            out, err = proc.communicate(stdin, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return f"no answer within {self.timeout_s:g} s"
        except BaseException:
            _kill_group(proc)
            raise
        if proc.returncode != 0:
            tail = _clip(err.decode("utf-8", "replace").strip())
            return f"exited with status {proc.returncode}" + (f": {tail}" if tail else "")
        return out


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the script and everything it started; reap it without waiting on stray pipes."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=1)
    except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipes
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the --strategy flag ---------------------------------------------------------------------------


def make_strategy(
    spec: str, table: PriceTable, *, script_timeout_s: float = DEFAULT_SCRIPT_TIMEOUT_S
) -> Strategy:
    """``--strategy scale`` or ``--strategy script:PATH`` (the path must be an executable)."""
    if spec == "scale":
        if table.empty:
            raise StrategyError(
                "--strategy scale needs prices: none were given",
                code="invalid_flag",
                field="--strategy",
                hint=f"add {_PRICE_EXAMPLE} and/or --price-cpu-hour 0.02",
            )
        return ScaleStrategy(table)
    if spec.startswith("script:") and spec.removeprefix("script:").strip():
        path = Path(spec.removeprefix("script:").strip()).expanduser().absolute()
        if not path.is_file():
            raise StrategyError(
                f"--strategy {spec!r}: {path} is not a file",
                code="invalid_flag",
                field="--strategy",
                hint="see examples/price_script.py for a price script",
            )
        if not os.access(path, os.X_OK):
            raise StrategyError(
                f"--strategy {spec!r}: {path} is not executable",
                code="invalid_flag",
                field="--strategy",
                hint=f"chmod +x {path} (and start it with a #! line)",
            )
        return ScriptStrategy(path, script_timeout_s, None if table.empty else table)
    raise StrategyError(
        f"--strategy {spec!r}: unknown strategy",
        code="invalid_flag",
        field="--strategy",
        hint="use --strategy scale or --strategy script:PATH",
    )
