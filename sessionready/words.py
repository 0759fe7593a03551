"""The shared words: how numbers and video tiers are written in the sentences people read.
Used by the quality model (a client reads it) and the monitor's risk engine (a therapist reads
it), so the same number or tier reads the same in both. Standard library only."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# What a connection's speed is enough for, by quality.VIDEO_TIERS ("unknown" has no words).
TIER_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "1080p": "full HD video",
        "720p": "smooth HD video (720p)",
        "360p": "basic video",
        "audio_only": "sound only (no video)",
        "none": "not even steady sound",
    }
)


def percent(ratio: float, sep: str = " ") -> str:
    """``ratio`` (0..1) as a percentage: "0 %", "under 0.1 %", one decimal under 10 % ("8.0 %"),
    none from 10 % ("12 %"). ``sep`` goes between the number and the sign: the quality model's
    client-facing messages write "8.0%" (sep="")."""
    value = 100 * ratio
    if value == 0:
        return f"0{sep}%"
    if value < 0.1:
        return f"under 0.1{sep}%"
    return f"{value:.1f}{sep}%" if value < 10 else f"{value:.0f}{sep}%"
