"""UDP reliability for the PBX's side of SIP transactions (RFC 3261 section 17).

Two mechanisms, both driven by the server thread's timers:

* ``ResponseCache``: the last response sent in each server transaction. A client
  that did not hear us retransmits its request; we resend the identical bytes
  (same To-tag, same nonce) instead of processing the request again, which is
  what keeps a retransmitted INVITE from becoming a second call.
* ``Retransmitter``: resends a datagram on the T1-doubling schedule capped at T2
  until stopped (the ACK to a final INVITE response, the response to our BYE),
  and gives up after 64*T1 with an optional callback.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from sandbox.messages import Address, TxKey
from sandbox.timers import Timer, Timers

T1_S = 0.5
T2_S = 4.0
TIMEOUT_S = 64 * T1_S
MAX_CACHED = 4096


class ResponseCache:
    """Bounded map from transaction to the last response sent in it (oldest evicted first)."""

    def __init__(self, limit: int = MAX_CACHED) -> None:
        self._limit = limit
        self._entries: OrderedDict[TxKey, bytes] = OrderedDict()

    def put(self, key: TxKey, data: bytes) -> None:
        """Remember ``data`` as the current answer to ``key`` (a later response replaces it)."""
        self._entries[key] = data
        self._entries.move_to_end(key)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)

    def get(self, key: TxKey) -> bytes | None:
        """The response to resend for a retransmitted request, if we answered it."""
        return self._entries.get(key)


class Retransmitter:
    """Resends one datagram until ``stop()``; calls ``on_timeout`` after 64*T1 without a stop.

    The first copy is sent by the caller; this only handles the repeats.
    """

    def __init__(
        self,
        timers: Timers,
        send: Callable[[bytes, Address], None],
        data: bytes,
        target: Address,
        on_timeout: Callable[[], None] | None = None,
    ) -> None:
        self._timers = timers
        self._send = send
        self._data = data
        self._target = target
        self._on_timeout = on_timeout
        self._interval = T1_S
        self._elapsed = 0.0
        self._timer: Timer | None = timers.schedule(T1_S, self._fire)

    def stop(self) -> None:
        """The peer answered: no more repeats, no timeout."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._elapsed += self._interval
        if self._elapsed >= TIMEOUT_S:
            self._timer = None
            if self._on_timeout is not None:
                self._on_timeout()
            return
        self._send(self._data, self._target)
        self._interval = min(self._interval * 2, T2_S)
        self._timer = self._timers.schedule(self._interval, self._fire)
