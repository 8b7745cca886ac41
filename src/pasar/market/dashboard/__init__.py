"""The market's web dashboard (``/ui``): the network at a glance, prices, providers, jobs and
the chain explorer, server-rendered from the same typed views as the API and the CLI.

- :mod:`.routes`: the pages (HTML, ``?fragment=1`` for the live refresh), sign-in, static files;
- :mod:`.views`: what each page shows (plain data, bounded: pages and the newest records only);
- :mod:`.signin`: stateless sign-in with a client key (market-signed challenge and token);
- :mod:`.samples`: the in-memory ring of utilization samples behind "over time";
- :mod:`.svg`: charts drawn on the server; templates/ and static/ ship as package data.
"""
