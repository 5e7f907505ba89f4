"""The ``prompts`` table: prompt audio by content hash, so workers on any host can fetch it.

Uploaded WAVs are stored when their campaign is created; a ``say`` text is
stored the first time any worker renders it. Rows are immutable (the key is a
hash of the content), so concurrent writers use ``ON CONFLICT DO NOTHING`` and
readers never need a lock.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Mapping
from typing import Any

import psycopg


def _duration(audio: bytes) -> float:
    with wave.open(io.BytesIO(audio), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def store_wavs(conn: psycopg.Connection[Any], wavs: Mapping[str, bytes]) -> None:
    """Store uploaded WAVs (already checked) by the sha256 of their bytes."""
    for sha, audio in wavs.items():
        conn.execute(
            "INSERT INTO prompts (sha256, kind, audio, duration_s) VALUES (%s, 'wav', %s, %s)"
            " ON CONFLICT (sha256) DO NOTHING",
            (sha, audio, _duration(audio)),
        )


def store_rendered(conn: psycopg.Connection[Any], sha: str, voice: str, text: str, audio: bytes) -> None:
    """Store a rendered say prompt under the hash of its voice and text."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO prompts (sha256, kind, voice, text, audio, duration_s) VALUES (%s, 'say', %s, %s, %s, %s)"
            " ON CONFLICT (sha256) DO NOTHING",
            (sha, voice, text, audio, _duration(audio)),
        )


def fetch_prompt(conn: psycopg.Connection[Any], sha: str) -> bytes | None:
    """The prompt's WAV bytes, or None when no row has that hash."""
    row = conn.execute("SELECT audio FROM prompts WHERE sha256 = %s", (sha,)).fetchone()
    return None if row is None else bytes(row[0])
