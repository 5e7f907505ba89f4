"""The AI-agent bridge: an answered call's audio to a realtime voice agent and back (issue 14).

``provider`` is the seam (one module per agent protocol: ``media_streams`` for
Twilio-compatible WebSocket agents); ``playout`` the jitter buffer on the way
back; ``loop`` the process's one asyncio thread; ``bridge`` ties a call's
:class:`~worker.sip.audio_tap.AudioTap` to a provider session on that thread.
"""
