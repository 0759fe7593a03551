"""From a check report's wire form to the facts the quality model judges.

One mapping for both ends: the agent judges its own check with it, and the monitor re-judges
stored checks with its thresholds (monitor/risk/engine.py). Dependency-free, like the schema.
"""

from __future__ import annotations

from dataclasses import fields

from sessionready import quality, schema


def network_facts(network: schema.Network) -> quality.NetworkFacts:
    return quality.NetworkFacts(
        rtt_p50_ms=network.rtt_ms.p50 if network.rtt_ms else None,
        rtt_p95_ms=network.rtt_ms.p95 if network.rtt_ms else None,
        jitter_up_ms=network.jitter_ms.up if network.jitter_ms else None,
        jitter_down_ms=network.jitter_ms.down if network.jitter_ms else None,
        loss_up_ratio=network.loss.up if network.loss else None,
        loss_down_ratio=network.loss.down if network.loss else None,
        loss_up_ci95=network.loss.up_ci95 if network.loss else None,
        loss_down_ci95=network.loss.down_ci95 if network.loss else None,
        packets_sent=network.packets.sent,
        # A report from elsewhere may claim more echoes than probes; the model never sees that.
        packets_received=min(network.packets.received, network.packets.sent),
        throughput_down_mbps=network.throughput_mbps.down,
        throughput_up_mbps=network.throughput_mbps.up,
        loaded_latency_down_ms=network.loaded_latency_ms.down,
        loaded_latency_up_ms=network.loaded_latency_ms.up,
        udp_error=network.udp_error,
        throughput_error=network.throughput_error,
        # Absent from reports made before it: the model then judges J, as it did.
        jitter_mean_up_ms=network.jitter_mean_ms.up if network.jitter_mean_ms else None,
        jitter_mean_down_ms=network.jitter_mean_ms.down if network.jitter_mean_ms else None,
    )


def machine_facts(machine: schema.Machine) -> quality.MachineFacts:
    return quality.MachineFacts(
        cpu_pct=machine.cpu_pct,
        memory_available_pct=machine.memory_available_pct,
        swap_bytes_per_s=machine.swap_bytes_per_s,
        battery_pct=machine.battery_pct,
        battery_charging=machine.battery_charging,
        battery_time_left_s=machine.battery_time_left_s,
        link_type=machine.link.type,
        wifi_signal_dbm=machine.link.wifi_signal_dbm,
        background_up_mbps=machine.background_traffic_mbps.up,
        background_down_mbps=machine.background_traffic_mbps.down,
    )


def room_facts(room: schema.Room) -> quality.RoomFacts:
    # The model's room facts are the wire fields it judges, under the same names.
    return quality.RoomFacts(**{f.name: getattr(room, f.name) for f in fields(quality.RoomFacts)})


def device_facts(devices: schema.Devices) -> quality.DeviceFacts:
    return quality.DeviceFacts(
        camera=devices.camera.state,
        camera_black=devices.camera.black,
        microphone=devices.microphone.state,
        microphone_signal=devices.microphone.signal,
        speaker=devices.speaker.state,
        camera_width=devices.camera.width,
        camera_height=devices.camera.height,
        camera_fps=devices.camera.fps,
    )


def assess_check(
    network: schema.Network,
    machine: schema.Machine | None,
    room: schema.Room | None,
    thresholds: quality.Thresholds,
    devices: schema.Devices | None = None,
) -> quality.Assessment:
    """The quality model's verdict on a check's network, machine, room and (a browser check's)
    devices."""
    return quality.assess(
        network_facts(network),
        thresholds,
        machine=machine_facts(machine) if machine is not None else None,
        room=room_facts(room) if room is not None else None,
        devices=device_facts(devices) if devices is not None else None,
    )
