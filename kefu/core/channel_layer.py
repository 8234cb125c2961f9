"""The embedded default's channel layer: Channels' in-memory layer, with its expiry sweep
throttled.

The stock layer sweeps every channel and every group membership for expired entries on each
send, group send and receive: O(open sockets) per operation, so with thousands of open chat
widgets each push cost milliseconds of event-loop time (measured with bench/widget.py). The sweep
only reclaims memory of messages nobody read and memberships past their expiry, which a sweep
once a second does as well.
"""

from __future__ import annotations

import time

from channels.layers import InMemoryChannelLayer

SWEEP_EVERY = 1.0


class ThrottledInMemoryChannelLayer(InMemoryChannelLayer):
    _last_sweep = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < SWEEP_EVERY:
            return
        self._last_sweep = now
        super()._clean_expired()
