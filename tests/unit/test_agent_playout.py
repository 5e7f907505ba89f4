"""The jitter buffer on the agent -> callee path: re-framing, bounds, prefill, marks and clear."""

from __future__ import annotations

from worker.agent.playout import FRAME_BYTES, Playout


def test_odd_sized_audio_is_reframed_and_counted() -> None:
    """Pushes that are not whole 20 ms frames are joined into whole frames; the odd sizes are counted."""
    p = Playout(prefill=1, tap_depth=10)
    p.push(b"\x01" * 100)
    p.push(b"\x01" * (FRAME_BYTES * 2 - 100))
    assert p.odd_sizes == 2 and p.accepted == 2
    assert p.take(0) == [b"\x01" * FRAME_BYTES] * 2


def test_buffer_is_bounded_and_drops_are_counted() -> None:
    """Beyond max_frames the newest audio is refused and counted: memory stays flat whatever the agent sends."""
    p = Playout(max_frames=5)
    p.push(bytes(FRAME_BYTES * 8))
    assert p.queued == 5 and p.dropped == 3 and p.accepted == 5


def test_prefill_and_tap_depth() -> None:
    """Playback waits for `prefill` frames, then hands the tap at most `tap_depth` frames in it at once."""
    p = Playout(prefill=3, tap_depth=2)
    p.push(bytes(FRAME_BYTES * 2))
    assert p.take(0) == []
    p.push(bytes(FRAME_BYTES * 3))
    assert len(p.take(0)) == 2
    assert len(p.take(1)) == 1
    assert p.take(2) == []


def test_mark_is_answered_once_its_audio_is_played() -> None:
    """A mark after 3 frames is due only once the tap has played 3 frames."""
    p = Playout(prefill=1, tap_depth=5)
    p.push(bytes(FRAME_BYTES * 3))
    p.mark("greeting")
    p.take(0)
    p.played(2)
    assert p.due_marks() == []
    p.played(3)
    assert p.due_marks() == ["greeting"]


def test_clear_empties_and_answers_pending_marks() -> None:
    """clear drops what is queued, answers every pending mark, and later marks count from there."""
    p = Playout(prefill=1, tap_depth=2)
    p.push(bytes(FRAME_BYTES * 10))
    p.mark("a")
    p.take(0)
    assert p.clear(tap_dropped=2) == ["a"]
    assert p.queued == 0 and p.cleared == 10
    p.push(bytes(FRAME_BYTES))
    p.mark("b")
    p.played(1)
    assert p.due_marks() == ["b"]


def test_real_time_backlog_is_trimmed_but_a_burst_is_not() -> None:
    """Paced audio that waits because the clock played silence (late ticks owed) loses its oldest frame per
    take, counted, down to max_backlog; a TTS burst keeps all."""
    paced = Playout(tap_depth=1, max_backlog=3, burst_frames=60)
    for n in range(6):  # 6 frames over 120 ms: real time, but 6 wait (the clock fell behind)
        paced.push(bytes(FRAME_BYTES), now=10.0 + n * 0.02)
    paced.take(0, now=10.11)  # talking: one frame to the tap
    paced.owe(5)
    paced.take(1, now=10.12)
    paced.take(1, now=10.13)
    paced.take(1, now=10.14)
    assert paced.skipped == 2 and paced.queued == 3
    burst = Playout(tap_depth=1, max_backlog=3, burst_frames=60)
    burst.push(bytes(FRAME_BYTES * 200), now=10.0)  # 4 s of speech at once
    burst.take(0, now=10.01)
    burst.owe(5)
    burst.take(1, now=10.02)
    assert burst.skipped == 0 and burst.queued == 199
