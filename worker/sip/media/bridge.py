"""Transfers: blind (REFER, result from the NOTIFY sipfrag) and bridged (a second call joined in the bridge).

Bridge mode is for PBXs that refuse REFER: the worker places a second call to
the agent through the same account and, once it is CONFIRMED with audio,
connects the two calls' AudioMedia both ways in pjsua's conference bridge.
The bridged leg's final code is the transfer's result; afterwards either side
hanging up ends both. The leg is a PjCall like any other: kept referenced
until DISCONNECTED and dropped right then on the SIP thread, before pjsua can
reuse its slot (the runtime asks :meth:`BridgeLeg.release_if_ended` before
starting calls).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pjsua2 as pj

from worker.sip.answer import MediaError


def refer(call: Any, target_uri: str) -> None:
    """Send REFER; pjsua reports the NOTIFYs (or the REFER's failure) through onCallTransferStatus."""
    try:
        call.xfer(target_uri, pj.CallOpParam(True))
    except pj.Error as exc:
        raise MediaError(f"REFER to {target_uri} failed: {exc.reason.strip()}") from exc


class BridgeLeg:
    """The agent leg of a bridged transfer. Every method runs on the SIP thread."""

    def __init__(self, leg: Any, target_uri: str, now: float, ring_timeout_s: float) -> None:
        self.target_uri = target_uri
        self._ring_deadline = now + ring_timeout_s
        self._leg: Any | None = leg
        self.joined = False
        self.final: int | None = None  # the leg's final code, once known
        self._ringing_told = False
        self._pair: tuple[Any, Any] | None = None  # (customer audio, agent audio) while joined
        self.ended = False

    @property
    def agent_audio(self) -> Any | None:
        return self._pair[1] if self._pair is not None else None

    def poll(self, customer_audio: Any | None, now: float) -> list[tuple[int, bool]]:
        """Advance; returns transfer reports (status, final) for the script."""
        leg = self._leg
        if leg is None:
            return []
        out: list[tuple[int, bool]] = []
        leg.events.clear()  # the agent's media facts: joining re-checks the ports every turn anyway
        trace = leg.trace
        if not self._ringing_told and any(180 <= code < 190 for code, _ in trace.provisional):
            self._ringing_told = True
            out.append((180, False))
        if trace.ended:
            self.ended = True
            if self.final is None:
                self.final = trace.result().status
                out.append((self.final, True))
            self._pair = None  # its bridge port is gone, and every connection with it
            return out
        if not trace.answered and now >= self._ring_deadline and not trace.local_hangup:
            trace.on_local_hangup(ring_timeout=True)
            with contextlib.suppress(pj.Error):
                leg.hangup(pj.CallOpParam())
        if leg.confirmed and leg.audio is not None and customer_audio is not None:
            self._join(customer_audio, leg.audio)
            if self.final is None:
                self.final = 200
                out.append((200, True))
        return out

    def _join(self, customer: Any, agent: Any) -> None:
        if self._pair is not None and self._pair[0].getPortId() == customer.getPortId() \
                and self._pair[1].getPortId() == agent.getPortId():
            return
        self._unjoin()
        customer.startTransmit(agent)
        agent.startTransmit(customer)
        self._pair = (customer, agent)
        self.joined = True

    def _unjoin(self) -> None:
        if self._pair is not None:
            customer, agent = self._pair
            self._pair = None
            with contextlib.suppress(pj.Error):
                customer.stopTransmit(agent)
            with contextlib.suppress(pj.Error):
                agent.stopTransmit(customer)

    def hang_up(self) -> None:
        """The customer's side ended: end the agent's too."""
        leg = self._leg
        if leg is not None and not leg.trace.ended and not leg.trace.local_hangup:
            self._unjoin()
            leg.trace.on_local_hangup()
            with contextlib.suppress(pj.Error):
                leg.hangup(pj.CallOpParam())

    def release_if_ended(self) -> bool:
        """Drop the leg's PjCall once DISCONNECTED (its slot may be reused next); True when gone."""
        leg = self._leg
        if leg is not None and leg.trace.ended:
            self._pair = None
            self._leg = None
            del leg
        return self._leg is None
