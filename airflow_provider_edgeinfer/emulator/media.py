"""Synthetic outputs of the right shape: decodable PNG images, WAV audio, text derived from input."""

from __future__ import annotations

import hashlib
import math
import struct
import zlib

_WORDS = (
    "the quarterly numbers look strong and the team agreed to ship the new pipeline next week "
    "customers asked about pricing support latency and the roadmap for speech models"
).split()


def png(width: int = 64, height: int = 64, seed: str = "") -> bytes:
    """A real, decodable RGB PNG whose colours depend on ``seed``."""
    width, height = max(1, min(width, 2048)), max(1, min(height, 2048))
    digest = hashlib.sha256(seed.encode()).digest()
    r, g, b = digest[0], digest[1], digest[2]
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        shade = (y * 255) // max(1, height - 1)
        rows.extend(bytes(((r + shade) % 256, (g + shade // 2) % 256, b)) * width)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 6))
        + chunk(b"IEND", b"")
    )


def wav(seconds: float = 1.0, frequency: float = 440.0, rate: int = 16000) -> bytes:
    """A mono 16-bit PCM WAV tone."""
    frames = int(max(0.05, min(seconds, 30.0)) * rate)
    samples = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * frequency * i / rate))) for i in range(frames)
    )
    header = b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return header + b"data" + struct.pack("<I", len(samples)) + samples


def transcript(data: bytes, label: str = "") -> str:
    """A deterministic "transcript" derived from the audio bytes: same bytes, same text."""
    return transcript_of(hashlib.sha256(data).digest(), len(data), label)


def transcript_of(digest: bytes, size: int, label: str = "") -> str:
    """:func:`transcript` of audio known by its SHA-256 and size (a stored upload: its bytes are
    not read back from disk, which at a million uploads was most of the emulator's listing time)."""
    words = [_WORDS[b % len(_WORDS)] for b in digest[:12]]
    prefix = f"[{label}] " if label else ""
    return f"{prefix}{' '.join(words).capitalize()}. ({size} bytes of audio)"


def embedding(text: str, dimensions: int) -> list[float]:
    """A unit-length vector derived from ``text``."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        block = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((byte - 127.5) / 127.5 for byte in block)
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def chat_reply(messages: list[dict[str, object]]) -> str:
    last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    content = str(last.get("content", "")) if last else ""
    words = content.split()
    gist = " ".join(words[:12]) + ("..." if len(words) > 12 else "")
    return f"Summary: {gist}" if gist else "Hello from the edgeinfer emulator."
