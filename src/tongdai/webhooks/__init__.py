"""Webhooks: an app's events POSTed, signed, to the endpoints it registered.

Events are written to an outbox in the database when they are published
(``outbox.py``), then sent by ``sender.py`` with retries and exponential backoff, so
neither a restart nor an hour-long receiver outage loses one. ``signing.py`` is the
signature a receiver checks; ``guard.py`` keeps targets off private networks.
"""
