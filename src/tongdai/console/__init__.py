"""The operator's console at ``/console``: server-rendered pages (Jinja2) with a little
JavaScript for live updates over a websocket; every asset is in this package."""
