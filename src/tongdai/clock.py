"""The clocks tongdai reads, injected by the composition root (``server.py``).

A ``Clock`` returns seconds as a float. Services take one instead of calling
``time.time()`` themselves, so a test can drive them with a fake one and so that
values compared with each other always come from the same clock: the wall clock
(``time.time``) for what is stored, shown or cached, a monotonic one
(``time.monotonic``) for measuring silence and timeouts, which must not jump when
the system time is set.
"""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]
