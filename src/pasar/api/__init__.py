"""The typed wire contract of the market API: what crosses every boundary, described once.

One module per family — :mod:`.status` (the ``Literal`` status types), :mod:`.orders`,
:mod:`.leases`, :mod:`.offers`, :mod:`.feed`, :mod:`.bills`, :mod:`.receipts`, :mod:`.txs`
(transaction bodies and the market's answers), :mod:`.quote`, :mod:`.health`, :mod:`.accounts`
and :mod:`.stats`. The market's routes build these models from core records and declare them as
``response_model`` (so ``/openapi.json`` is generated from them); the client SDK, the provider
agent and the CLI parse the market's answers with :func:`~pasar.api.base.parse`, and the
requests themselves are described once in :mod:`pasar.client.calls`.

The package may import ``pasar.core`` (to build views from records); ``core`` never imports it
(the state machine keeps its own validation of transaction bodies).
"""
