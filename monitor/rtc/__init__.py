"""The browser check's probe stream over WebRTC, terminated in the monitor (docs/browser-check.md
section 3): ``records`` (per-stream records, their analysis, the registry in ``app[keys.RTC]``)
and ``peer`` (the aiortc peer; needs the ``monitor`` extra)."""
