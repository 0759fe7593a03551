"""The risk engine's words: what each reason says about an end, and what the therapist can do.

The engine (``monitor.risk.engine``) decides causes and severities from numbers; every
sentence a therapist reads about a session's risk is made here, from those numbers. Messages
name the end ("the client's connection ..."); actions speak to the therapist ("Ask the client
to ..."). Numbers are formatted by ``sessionready.words``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sessionready import quality
from sessionready.words import TIER_WORDS, percent

if TYPE_CHECKING:
    from monitor.risk.engine import CheckSummary

FALLBACK_ACTION = "Start 10 minutes early to troubleshoot, and have the phone fallback ready."


# --------------------------------------------------------------------------------------------
# What the engine's own causes say
# --------------------------------------------------------------------------------------------


def no_check(role: str) -> str:
    return f"{_cap(_who(role))} has not run a check yet."


def stale_check(role: str, age_s: float) -> str:
    return f"{_cap(_whose(role))} last check was {_duration(age_s)} ago, too old to count."


def agent_offline(role: str, silent_s: float | None) -> str:
    """``silent_s``: since the agent was last in touch; None if it never was."""
    if silent_s is None:
        return f"{_cap(_whose(role))} sessionready agent has never been in touch."
    return f"{_cap(_whose(role))} sessionready agent has not been in touch for {_duration(silent_s)}."


def recent_probe_failed(role: str, problems: int, count: int) -> str:
    return f"{_cap(_whose(role))} connection check could not run in {problems} of the last {count} background measurements."


def recent_loss(role: str, direction: str, loss_ratio: float) -> str:
    return f"{_cap(_whose(role))} connection has lost {_pct(loss_ratio)} of packets {direction} in recent background measurements."


def recent_jitter(role: str, direction: str, jitter_ms: float) -> str:
    return f"{_cap(_whose(role))} connection has been uneven {direction} (jitter {jitter_ms:.0f} ms) in recent background measurements."


def recent_delay(role: str, rtt_ms: float) -> str:
    return f"{_cap(_whose(role))} connection has had a {rtt_ms:.0f} ms round trip in recent background measurements."


def history_degraded(role: str, degraded: int, sessions: int, *, this_time_of_day: bool) -> str:
    around = " around this time of day" if this_time_of_day else ""
    return f"{_cap(_whose(role))} connection has degraded in {degraded} of the last {sessions} sessions{around}."


def e2e_delay(mouth_to_ear_ms: float, sender: str, receiver: str) -> str:
    return (
        f"Together the two connections delay speech by about {mouth_to_ear_ms:.0f} ms from the "
        f"{sender} to the {receiver}, enough to talk over each other by accident."
    )


def e2e_loss(loss_ratio: float, sender: str, receiver: str) -> str:
    return f"Together the two connections are expected to lose {_pct(loss_ratio)} of sound and picture from the {sender} to the {receiver}."


def e2e_audio_quality(mos: float) -> str:
    return (
        f"Together the two connections give an expected sound quality of {mos:.1f} out of 5 "
        "(4.0 or more is good; below 3.6 a conversation is hard to follow)."
    )


def e2e_video(tier: str) -> str:
    return f"Together the two connections are {enough_for(tier)}."


# --------------------------------------------------------------------------------------------
# What the check's findings say, and what to do
# --------------------------------------------------------------------------------------------


def enough_for(tier: str) -> str:
    if tier == "none":
        return "too slow even for steady sound"
    return f"enough for {TIER_WORDS.get(tier, 'an unknown quality')} at most"


# What to do, as a verb phrase: "Ask the client to <phrase>." for the client's end,
# "<Phrase>." for the therapist's own end.
ACTIONS: Mapping[str, str] = {
    "udp_blocked": "turn off any VPN, or join from another network such as a phone's hotspot",
    "high_delay": "turn off any VPN and use a network cable instead of Wi-Fi",
    "high_upload_loss": "move closer to the router or use a network cable, and pause cloud backups and large uploads",
    "high_download_loss": "move closer to the router or use a network cable, and keep streaming and downloads at home paused",
    "uncertain_upload_loss": "run the check again if the sound breaks up during the session",
    "uncertain_download_loss": "run the check again if the sound breaks up during the session",
    "borderline": "run the check again shortly before the session",
    "high_upload_jitter": "use a network cable or move closer to the router, and pause uploads during the session",
    "high_download_jitter": "use a network cable or move closer to the router, and keep streaming at home paused",
    "low_audio_quality": "switch to audio only if the sound breaks up",
    "bufferbloat_download": "keep streaming and downloads at home paused during the session",
    "bufferbloat_upload": "keep cloud backups and large uploads paused during the session",
    "low_upload_throughput": "pause other traffic and use a network cable, and switch to audio only if the picture freezes",
    "low_download_throughput": "pause other traffic and use a network cable, and switch to audio only if the picture freezes",
    "throughput_test_failed": "run the check again a few minutes before the session",
    "throughput_not_measured": "run the check again if the picture freezes",
    "high_cpu": "close other programs, especially other video apps and browser tabs playing video",
    "low_memory": "close other programs, or restart the computer before the session",
    "swapping": "close other programs, or restart the computer before the session",
    "low_battery": "charge the laptop: plug in the charger before the session",
    "weak_wifi": "move closer to the router or use a network cable",
    "background_upload": "pause cloud backups and file syncing during the session",
    "background_download": "pause downloads, updates and streaming during the session",
    "no_microphone": "plug in a headset or allow apps to use the microphone, then run the check again",
    "microphone_busy": "close other programs that use the microphone",
    "microphone_silent": "check that the microphone is not muted and is the one chosen",
    "microphone_clipping": "sit a little further from the microphone or turn its volume down",
    "noisy_room": "find a private, quiet room and use a headset",
    "intermittent_noise": "close the door and let others at home know the session is starting",
    "voices_in_background": "find a private room, close the door and use headphones, so the session stays confidential",
    "low_speech_to_noise": "use a headset and find a quieter room",
    "speech_not_heard": "check that the microphone is chosen and not muted, then run the check again",
    "camera_not_allowed": "allow the camera when the session asks for it",
    "camera_not_found": "plug in a webcam or join from a device with a camera",
    "camera_unavailable": "close other apps that use the camera, then run the check again",
    "camera_black": "open the camera's cover and turn on a light in front of them",
    "camera_low_quality": "turn on a light in front of them, or use a better camera",
    "microphone_not_allowed": "allow the microphone when the session asks for it",
    "microphone_not_found": "plug in a headset or join from a device with a microphone",
    "microphone_unavailable": "close other apps that use the microphone, then run the check again",
    "speaker_not_heard": "turn the volume up and check that the right speakers or headphones are chosen",
    "no_check": "run the check now, and start 10 minutes early to troubleshoot if it cannot run",
    "stale_check": "run the check now, and start 10 minutes early to troubleshoot if it cannot run",
    "agent_offline": "switch on the computer and make sure sessionready is running and connected",
    "recent_loss": "move closer to the router or use a network cable, and pause large uploads and downloads",
    "recent_jitter": "use a network cable or move closer to the router",
    "recent_delay": "turn off any VPN and use a network cable instead of Wi-Fi",
    "recent_probe_failed": "run the check before the session to find out what blocks the connection",
}

# Actions for the therapist whatever the end: these are about the session, not one machine.
THERAPIST_ACTIONS: Mapping[str, str] = {
    "history_degraded": "Start 10 minutes early with the client to troubleshoot, and have the phone fallback ready.",
    "e2e_delay": "Leave a short pause before answering so you do not talk over each other, and turn off any VPN at both ends.",
    "e2e_loss": "Agree with the client at the start to switch to audio only if the sound breaks up.",
    "e2e_audio_quality": "Agree with the client at the start to switch to audio only if the sound breaks up.",
    "e2e_video": "Agree with the client at the start to switch to audio only if the picture freezes.",
}

# Instructions during the info stage ("no check yet, well ahead of time") are gentler.
_INFO_ACTIONS: Mapping[str, str] = {
    "no_check": "run the check before the session",
    "stale_check": "run the check before the session",
}


def render_action(end: str, cause: str, severity: str) -> str:
    """The suggested action for the therapist, for a reason of ``cause`` at ``end`` and ``severity``."""
    if cause in THERAPIST_ACTIONS:
        action = THERAPIST_ACTIONS[cause]
    else:
        phrase = _INFO_ACTIONS.get(cause, ACTIONS[cause]) if severity == "info" else ACTIONS[cause]
        action = f"Ask the client to {phrase}." if end == "client" else f"{_cap(phrase)}."
    if severity == "critical" and FALLBACK_ACTION not in action:
        action = f"{action} {FALLBACK_ACTION}"
    return action


def check_message(role: str, code: str, c: CheckSummary) -> str:
    who, whose = _cap(_who(role)), _cap(_whose(role))
    up = code.endswith(("upload_loss", "upload_jitter", "_upload", "upload_throughput"))
    direction = "upstream" if up else "downstream"
    if code == "udp_blocked":
        return f"{whose} network blocks the kind of traffic live calls use (UDP); the call would fall back to a slower route."
    if code == "high_delay":
        return f"{whose} connection has a {_num(c.rtt_p50_ms, 'ms')} round trip, so the conversation may lag."
    if code in ("high_upload_loss", "high_download_loss"):
        loss = c.loss_up_ratio if up else c.loss_down_ratio
        return f"{whose} connection loses {_pct(loss)} of packets {direction}."
    if code in ("uncertain_upload_loss", "uncertain_download_loss"):
        return f"{whose} check was too short to rule out packet loss {direction}."
    if code == "borderline":
        return f"{whose} check ran its longest and one figure still sits on a threshold."
    if code in ("high_upload_jitter", "high_download_jitter"):
        jitter = c.jitter_up_ms if up else c.jitter_down_ms
        return f"{whose} connection is uneven {direction} (jitter {_num(jitter, 'ms')}), so sound may stutter."
    if code == "low_audio_quality":
        mos = "unknown" if c.mos is None else f"{c.mos:.1f} out of 5"
        return f"{whose} connection gives an expected sound quality of {mos}."
    if code in ("bufferbloat_download", "bufferbloat_upload"):
        rise = c.loaded_latency_up_ms if up else c.loaded_latency_down_ms
        busy = "an upload" if up else "a download"
        return f"{whose} connection slows down by {_num(rise, 'ms')} when busy with {busy}."
    if code in ("low_upload_throughput", "low_download_throughput"):
        mbps = c.throughput_up_mbps if up else c.throughput_down_mbps
        side = "upload" if up else "download"
        tier = quality.video_tier(mbps, None) if up else quality.video_tier(None, mbps)
        return f"{whose} {side} speed ({_num(mbps, 'Mbit/s', 1)}) is {enough_for(tier)}."
    if code == "throughput_test_failed":
        return f"{whose} speed test could not finish, so video quality is unconfirmed."
    if code == "throughput_not_measured":
        return f"{whose} check did not measure speed in both directions."
    if code == "high_cpu":
        return f"{whose} computer's processor is {_num(c.cpu_pct, '%')} busy with other work."
    if code == "low_memory":
        return f"{whose} computer has only {_num(c.memory_available_pct, '%')} of its memory free."
    if code == "swapping":
        return f"{whose} computer is short of memory and swapping to disk."
    if code == "low_battery":
        return f"{whose} laptop battery is at {_num(c.battery_pct, '%')} and not charging."
    if code == "weak_wifi":
        return f"{whose} Wi-Fi signal is weak ({_num(c.wifi_signal_dbm, 'dBm')})."
    if code in ("background_upload", "background_download"):
        mbps = c.background_up_mbps if up else c.background_down_mbps
        verb = "uploading" if up else "downloading"
        return f"Something on {_whose(role)} computer was {verb} at {_num(mbps, 'Mbit/s', 1)} before the check."
    if code == "no_microphone":
        return f"{who} has no microphone the check could use."
    if code == "microphone_busy":
        return f"Another program holds {_whose(role)} microphone."
    if code == "microphone_silent":
        return f"{whose} microphone picks up no sound: it may be muted or switched off."
    if code == "microphone_clipping":
        return f"{whose} microphone is overloaded, so their voice may sound harsh."
    if code == "noisy_room":
        unit = "dBA" if c.noise_calibrated else "dB on the microphone's scale"
        return f"{whose} room is noisy (noise floor {_num(c.noise_floor_db, unit)})."
    if code == "intermittent_noise":
        return f"Noise in {_whose(role)} room comes and goes."
    if code == "voices_in_background":
        return f"Other voices can be heard in {_whose(role)} room: the session may not be private."
    if code == "low_speech_to_noise":
        return f"{whose} voice is only {_num(c.snr_db, 'dB')} louder than the room's noise."
    if code == "speech_not_heard":
        return f"{whose} check could not hear them speak."
    if code == "camera_not_allowed":
        return f"{who} did not let the check use their camera, so it was not tested."
    if code == "camera_not_found":
        return f"{whose} device has no camera the browser could find."
    if code == "camera_unavailable":
        return f"{whose} camera could not be started; another app may hold it."
    if code == "camera_black":
        return f"{whose} camera showed a black picture: covered, or the room too dark."
    if code == "camera_low_quality":
        return f"{whose} camera sends a jerky or small picture: movement and expressions may be hard to follow."
    if code == "microphone_not_allowed":
        return f"{who} did not let the check use their microphone, so it and the room were not tested."
    if code == "microphone_not_found":
        return f"{whose} device has no microphone the browser could find."
    if code == "microphone_unavailable":
        return f"{whose} microphone could not be started; another app may hold it."
    if code == "speaker_not_heard":
        return f"{who} did not hear the check's test tone."
    raise AssertionError(f"no words for check finding {code!r}")  # every REASON_CODE is covered; a test checks


def _who(role: str) -> str:
    return f"the {role}"


def _whose(role: str) -> str:
    return f"the {role}'s"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _num(value: float | None, unit: str, digits: int = 0) -> str:
    if value is None:
        return "an unmeasured amount" if unit != "%" else "an unmeasured share"
    return f"{value:.{digits}f} {unit}"


def _pct(ratio: float | None) -> str:
    return "an unmeasured share" if ratio is None else percent(ratio)


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} seconds"
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds / 86400:.0f} days"
