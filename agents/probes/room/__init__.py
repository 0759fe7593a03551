"""The room probe: noise floor, intermittent noise, voices and speech-to-noise ratio from the
microphone, without ever recording the room. See docs/room.md.

Importing this package needs nothing beyond the standard library; numpy, webrtcvad and
sounddevice are imported when a measurement starts.
"""

from agents.probes.room.model import (
    DONE_PROMPT,
    PROBLEMS,
    QUIET_PROMPT,
    SENTENCE,
    SPEECH_PROMPT,
    AudioSource,
    AudioUnavailable,
    Problem,
    Prompter,
    RoomResult,
    RoomSettings,
)
from agents.probes.room.probe import measure_room

__all__ = [
    "DONE_PROMPT",
    "PROBLEMS",
    "QUIET_PROMPT",
    "SENTENCE",
    "SPEECH_PROMPT",
    "AudioSource",
    "AudioUnavailable",
    "Problem",
    "Prompter",
    "RoomResult",
    "RoomSettings",
    "measure_room",
]
