// The browser check's network part: the probe stream's idle phase, then download and upload
// with the stream still running (delay under load), each phase ended by the monitor's stopping
// rule when the link's settings are adaptive (docs/browser-check.md sections 3 and 5). The page
// (check.js) runs it, and so does the network lab's test page (tests/lab/rtc_monitor.py): one
// page logic.
//
//   import { runNetwork } from "./network.js";
//   const net = await runNetwork({ secret, link, authorization, onStep });
//   // net = { rtc: {record, error}, down, up, refused }: the stream's "rtc" object as the check
//   // posts it (or its rtc_error), each direction's measureThroughput result, and whether the
//   // monitor refused the link (401) during a throughput phase (the check then ends).
//
// onStep(step, state, detail): step "connection", "down" or "up"; state "running", "done" or
// "problem"; detail the stream's rtc_error (connection) or the direction's result.

import { measureThroughput } from "./throughput.js";

// The monitor ends an adaptive phase by its longest length; this much later the page moves on
// by itself (the word travels on the echoes, and none may be coming back).
export const PHASE_MARGIN_S = 2;
const RTC_CODES = new Set(["rtc_unsupported", "rtc_failed", "rtc_blocked"]);

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Start the WebRTC probe stream (rtc.js, the probe stream's own module: docs/browser-check.md
 * section 3). Its "idle" phase starts with the first probe; markPhase moves it on; stop()
 * resolves to the "rtc" object of the check as it is posted. A missing module, a throw without
 * one of the contract's codes, or a malformed record is rtc_error "rtc_failed"; the check goes on.
 */
export async function startRtc(secret, link) {
  if (typeof RTCPeerConnection !== "function") return { error: "rtc_unsupported" };
  if (!link.rtc || !link.rtc.available) return { error: "rtc_failed" };
  try {
    const module = await import("./rtc.js");
    const stream = await module.startProbeStream({
      secret,
      intervalMs: link.settings.packet_interval_ms,
      packetBytes: link.settings.packet_bytes,
    });
    if (!stream || typeof stream.stop !== "function" || typeof stream.markPhase !== "function") return { error: "rtc_failed" };
    return { stream };
  } catch (error) {
    return { error: error && RTC_CODES.has(error.code) ? error.code : "rtc_failed" };
  }
}

function markPhase(started, name) {
  if (!started.stream) return;
  try {
    started.stream.markPhase(name);
  } catch {
    // a stream that broke part-way says so when it stops
  }
}

export async function stopRtc(started) {
  if (!started.stream) return { record: null, error: started.error };
  try {
    const record = await started.stream.stop();
    const valid = record && /^[0-9a-f]{32}$/.test(record.rtc_id) && Number.isInteger(record.sent) && Array.isArray(record.echoes) && record.phases;
    return valid ? { record, error: null } : { record: null, error: "rtc_failed" };
  } catch (error) {
    return { record: null, error: error && RTC_CODES.has(error.code) ? error.code : "rtc_failed" };
  }
}

/** How long a phase may run, and the monitor's word that ends it (null: a fixed phase). */
function phaseEnd(stream, adaptive, maxSeconds, fixedSeconds, over) {
  if (stream && adaptive && maxSeconds && over) return { seconds: maxSeconds + PHASE_MARGIN_S, over };
  return { seconds: fixedSeconds, over: null };
}

export async function runNetwork({ secret, link, authorization, onStep = () => {} }) {
  const settings = link.settings;
  // 1. Connection: the idle probe stream. Adaptive: until the monitor says its figures are
  // settled (its rule, never the page's), with the longest length plus a margin as a backstop
  // should that word never arrive; else the fixed length.
  onStep("connection", "running");
  const rtc = await startRtc(secret, link);
  const stream = rtc.stream;
  if (stream) {
    const idle = phaseEnd(stream, settings.adaptive, settings.udp_max_seconds, settings.udp_seconds, stream.idleOver);
    await Promise.race([idle.over || new Promise(() => {}), sleep(idle.seconds * 1000)]);
    onStep("connection", "done");
  } else {
    onStep("connection", "problem", rtc.error);
  }

  // 2-3. Throughput, the probe stream still running (delay under load). Adaptive: until the
  // monitor's rule, which the page's byte counts reach on the probes, ends the phase. Without a
  // stream nothing can end it: the fixed length.
  const result = { rtc: null, down: null, up: null, refused: false };
  for (const [step, direction, phase] of [["down", "down", "download"], ["up", "up", "upload"]]) {
    onStep(step, "running");
    markPhase(rtc, phase);
    const loadOver = stream && stream.loadOver ? stream.loadOver[phase] : null;
    const end = phaseEnd(stream, settings.adaptive, settings.load_max_seconds, settings.load_seconds, loadOver);
    const share = stream && typeof stream.setLoadSample === "function" ? (sample) => stream.setLoadSample(sample) : null;
    const measured = await measureThroughput(direction, {
      streams: settings.streams,
      loadSeconds: end.seconds,
      rampSeconds: settings.ramp_seconds,
      authorization,
      stop: end.over,
      onSample: share,
    });
    if (share) share(null);
    result[direction] = measured;
    if (measured.status === 401) {
      result.rtc = await stopRtc(rtc);
      result.refused = true;
      return result;
    }
    onStep(step, measured.mbps === null ? "problem" : "done", measured);
  }
  result.rtc = await stopRtc(rtc);
  return result;
}
