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


def test_standing_queue_of_a_real_time_agent_is_trimmed_but_a_burst_is_not() -> None:
    """An agent streaming at real time whose queue never drained below max_backlog for a second loses the
    surplus, one frame per take, counted; a TTS burst (and its slow tail) keeps every frame."""
    paced = Playout(tap_depth=1, max_backlog=1)
    paced.push(bytes(FRAME_BYTES * 4), now=9.99)  # a standing queue of 4 from the start
    t = 10.0
    for _ in range(60):  # 1.2 s: one frame in and one out per 20 ms
        paced.push(bytes(FRAME_BYTES), now=t)
        paced.take(0, now=t)
        t += 0.02
    paced.take(0, now=t)
    paced.take(0, now=t + 0.01)
    assert paced.skipped == 3 and paced.queued <= 2
    burst = Playout(tap_depth=1, max_backlog=1)
    burst.push(bytes(FRAME_BYTES * 200), now=10.0)  # 4 s of speech at once, then nothing
    for n in range(150):
        burst.take(0, now=10.0 + n * 0.02)
    assert burst.skipped == 0 and burst.queued == 50
