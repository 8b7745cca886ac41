"""The Python SDK: :class:`~pasar.client.client.Client`, :class:`~pasar.client.aio.AsyncClient`
and :func:`~pasar.client.remote.remote` (exported as ``pasar.Client`` etc.).

One module per job: ``config`` (market address, key), ``transport`` (HTTP, errors),
``calls`` (the API as data, shared by both clients), ``inputs`` (what a job uploads),
``results`` (verified downloads), ``client`` / ``aio`` (the two clients), ``remote``,
``payload`` and ``remote_entry`` (Python functions as jobs).
"""
