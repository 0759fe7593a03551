// The browser check's probe stream over a WebRTC data channel (docs/browser-check.md section 3).
//
//   import { startProbeStream } from "./rtc.js";
//   const stream = await startProbeStream({ secret, intervalMs: 20, packetBytes: 172 });
//   // probes flow; the "idle" phase began with the first one
//   stream.markPhase("download");   // ends the current phase, starts "download"
//   stream.markPhase("upload");
//   const rtc = await stream.stop(); // ends the phase, waits for late echoes, closes the peer
//   // rtc = { rtc_id, sent, echoes: [[seq, arrival_ms], ...], phases: { idle, download, upload } }
//   // is the "rtc" object of the check the page posts (section 4), as it is.
//
// startProbeStream({ secret, intervalMs = 20, packetBytes = 172, onEcho, openTimeoutMs = 10000 })
//   resolves once the data channel is open and the first probe is sent, to
//   { rtcId, markPhase(name | null), stop(), stats() }:
//   - markPhase(name): name is "idle", "download", "upload" (or null: no phase from now on);
//     a phase's span is [start, end) on performance.now(); marking a phase again replaces it.
//   - stop(): Promise of the records above; call it once.
//   - stats(): { sent, received } so far, for a progress display.
//   - idleOver: a Promise that resolves when the monitor says the idle phase is over (its
//     stopping rule, sessionready/settle.py, settled the figures or reached the longest length);
//     it never resolves from a monitor that runs the idle phase fixed.
//   - loadOver.download, loadOver.upload: the same for the throughput phases.
//   - setLoadSample(sample | null): while a throughput phase runs, each probe also carries
//     sample(nowMs) = [phaseStartMs, atMs, bytes]: the phase's cumulative bytes, complete up to
//     atMs (all on performance.now()), or null for none yet; the monitor's rule judges them.
//   - onEcho(seq, rttMs): optional, called for each first echo (RTT without the monitor's hold).
//   Each probe carries the phase the page is in and the arrival times of the last echoes it
//   received (receipts), so that the monitor holds both sides' records while the stream runs.
//   It rejects with an Error whose .code is the check's rtc_error: "rtc_unsupported" (no WebRTC
//   in this browser), "rtc_blocked" (the connection did not open: UDP blocked on the way),
//   "rtc_failed" (the monitor refused or answered an error; .status holds the HTTP status).
//
// Requests go to this origin only, with "Authorization: Link <secret>"; no ICE servers: the
// monitor is reached directly, as the CLI's UDP stream reaches the reflector.

const PROBE_KIND = 1;
const ECHO_KIND = 2;
const LOAD_PROBE_KIND = 3; // a probe with a load sample: f64 phase start | f64 at | f64 bytes, after the head
const PROBE_HEAD_BYTES = 16; // u8 kind | u8 phase | u16 receipts | u32 seq | f64 sent_ms
const LOAD_SAMPLE_BYTES = 24;
const RECEIPT_BYTES = 12; // u32 seq | f64 arrival_ms, after the head, as many as fit
const ECHO_HEAD_BYTES = 36; // u8 kind | u8 flags | ... | f64 monitor_recv_ms | f64 monitor_send_ms | u32 distinct
const PHASE_CODES = { idle: 1, download: 2, upload: 3 }; // 0: between phases
const IDLE_OVER = 0x01; // echo flags: the monitor ended the idle, download, upload phase
const DOWNLOAD_OVER = 0x02;
const UPLOAD_OVER = 0x04;
const MAX_PROBES = 65536;
const GATHER_TIMEOUT_MS = 3000;
// Beyond this much unsent data the channel is congested: a probe is not queued behind it (it
// would arrive late as a burst) but counted as sent and lost, like a full socket buffer in the CLI.
const MAX_BUFFERED_BYTES = 64 * 1024;

function rtcError(code, message, status) {
  const error = new Error(message);
  error.code = code;
  if (status !== undefined) error.status = status;
  return error;
}

/**
 * The offer as the monitor should read it: without host candidates named by mDNS ("….local",
 * which browsers offer instead of their addresses until the page holds camera or microphone
 * permission) and without "a=end-of-candidates". The monitor is not on the client's network and
 * cannot resolve such a name; told there are no more candidates, its ICE (aioice) gives up at
 * once, where it would otherwise learn the page's address from the page's own checks
 * (peer-reflexive, RFC 8445 section 7.3.1.3). Firefox 153 sends both: as it was, its stream was
 * refused (503) after 1 s; the end marker alone dropped, it opened in 1.1 s; both, in 0.06 s
 * (measured through a network namespace, Firefox's default settings).
 */
export function offerForMonitor(sdp) {
  return sdp
    .split("\r\n")
    .filter((line) => !/^a=end-of-candidates/.test(line) && !/^a=candidate:\S+ \d+ \S+ \d+ \S+\.local /i.test(line))
    .join("\r\n");
}

function waitForGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

function waitForOpen(pc, channel, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail("the probe connection did not open in time"), timeoutMs);
    function cleanup() {
      clearTimeout(timer);
      channel.removeEventListener("open", opened);
      pc.removeEventListener("connectionstatechange", state);
    }
    function opened() {
      cleanup();
      resolve();
    }
    function fail(message) {
      cleanup();
      reject(rtcError("rtc_blocked", message));
    }
    function state() {
      if (pc.connectionState === "failed") fail("the probe connection failed");
    }
    channel.addEventListener("open", opened);
    pc.addEventListener("connectionstatechange", state);
  });
}

export async function startProbeStream({ secret, intervalMs = 20, packetBytes = 172, onEcho, openTimeoutMs = 10000 }) {
  if (typeof RTCPeerConnection !== "function") {
    throw rtcError("rtc_unsupported", "this browser has no WebRTC");
  }
  if (packetBytes < ECHO_HEAD_BYTES) throw new RangeError(`packetBytes must be at least ${ECHO_HEAD_BYTES}`);
  const pc = new RTCPeerConnection({ iceServers: [] });
  let channel;
  try {
    channel = pc.createDataChannel("probe", { ordered: false, maxRetransmits: 0 });
    channel.binaryType = "arraybuffer";
    await pc.setLocalDescription(await pc.createOffer());
    await waitForGathering(pc);
  } catch (error) {
    pc.close();
    throw rtcError("rtc_unsupported", `WebRTC could not start: ${error.message}`);
  }
  let answer;
  try {
    const response = await fetch("/api/v1/link/rtc", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Link ${secret}` },
      body: JSON.stringify({ type: "offer", sdp: offerForMonitor(pc.localDescription.sdp) }),
      credentials: "omit",
      cache: "no-store",
    });
    answer = await response.json().catch(() => ({}));
    if (response.status !== 201) {
      throw rtcError("rtc_failed", (answer.error && answer.error.message) || `the monitor answered ${response.status}`, response.status);
    }
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  } catch (error) {
    pc.close();
    throw error.code ? error : rtcError("rtc_failed", `the monitor could not be asked: ${error.message}`);
  }
  try {
    await waitForOpen(pc, channel, openTimeoutMs);
  } catch (error) {
    pc.close();
    throw error;
  }

  const sentAt = []; // index = seq: performance.now() when sent
  const echoed = new Set();
  const echoes = [];
  const phases = { idle: null, download: null, upload: null };
  let current = null;
  let maxRttMs = 0;
  let stopped = false;
  let timer = null;
  // The last echoes received, [seq, arrival], as many as a probe carries: each is repeated in
  // the next few probes, so one lost probe loses no receipt.
  const maxReceipts = Math.floor((packetBytes - PROBE_HEAD_BYTES) / RECEIPT_BYTES);
  const receipts = [];
  let endIdle;
  let endDownload;
  let endUpload;
  const idleOver = new Promise((resolve) => { endIdle = resolve; });
  const loadOver = {
    download: new Promise((resolve) => { endDownload = resolve; }),
    upload: new Promise((resolve) => { endUpload = resolve; }),
  };
  let loadSample = null;

  channel.addEventListener("message", (event) => {
    const arrival = performance.now();
    const data = event.data;
    if (!(data instanceof ArrayBuffer) || data.byteLength < ECHO_HEAD_BYTES) return;
    const view = new DataView(data);
    if (view.getUint8(0) !== ECHO_KIND) return;
    const flags = view.getUint8(1);
    if (flags & IDLE_OVER) endIdle();
    if (flags & DOWNLOAD_OVER) endDownload();
    if (flags & UPLOAD_OVER) endUpload();
    const seq = view.getUint32(4);
    if (seq >= sentAt.length || echoed.has(seq)) return;
    echoed.add(seq);
    echoes.push([seq, arrival]);
    receipts.push([seq, arrival]);
    if (receipts.length > maxReceipts) receipts.shift();
    const hold = view.getFloat64(24) - view.getFloat64(16);
    const rtt = arrival - sentAt[seq] - hold;
    if (rtt > maxRttMs) maxRttMs = rtt;
    if (onEcho) onEcho(seq, rtt);
  });

  function markPhase(name) {
    const now = performance.now();
    if (current) phases[current][1] = now;
    current = name;
    if (name) {
      if (!(name in phases)) throw new RangeError(`unknown phase ${name}`);
      phases[name] = [now, now];
    }
  }

  const probe = new ArrayBuffer(packetBytes);
  const view = new DataView(probe);
  function send() {
    const seq = sentAt.length;
    const now = performance.now();
    sentAt.push(now);
    let sample = null;
    if (loadSample && (current === "download" || current === "upload")) {
      try {
        sample = loadSample(now);
      } catch {
        sample = null; // a meter that broke part-way: the probe goes without its sample
      }
      if (!Array.isArray(sample) || sample.length !== 3 || !sample.every(Number.isFinite)) sample = null;
    }
    const head = sample ? PROBE_HEAD_BYTES + LOAD_SAMPLE_BYTES : PROBE_HEAD_BYTES;
    const fit = receipts.slice(-Math.floor((packetBytes - head) / RECEIPT_BYTES));
    view.setUint8(0, sample ? LOAD_PROBE_KIND : PROBE_KIND);
    view.setUint8(1, current ? PHASE_CODES[current] : 0);
    view.setUint16(2, fit.length);
    view.setUint32(4, seq);
    view.setFloat64(8, now);
    if (sample) sample.forEach((value, i) => view.setFloat64(PROBE_HEAD_BYTES + 8 * i, value));
    fit.forEach(([echoSeq, arrival], i) => {
      view.setUint32(head + i * RECEIPT_BYTES, echoSeq);
      view.setFloat64(head + i * RECEIPT_BYTES + 4, arrival);
    });
    if (channel.readyState === "open" && channel.bufferedAmount <= MAX_BUFFERED_BYTES) {
      try {
        channel.send(probe);
      } catch {
        // counted as sent and lost, like any probe that does not arrive
      }
    }
  }

  // An absolute schedule: timers fire late, and a late one must not shift every later probe.
  let next = performance.now();
  function tick() {
    if (stopped || sentAt.length >= MAX_PROBES) return;
    send();
    next += intervalMs;
    let delay = next - performance.now();
    if (delay < -intervalMs) {
      // The page stalled for more than a packet (a busy tab): resume the rhythm from now
      // instead of sending a burst no call would send.
      next = performance.now();
      delay = 0;
    }
    timer = setTimeout(tick, Math.max(0, delay));
  }
  markPhase("idle");
  tick();

  async function stop() {
    if (stopped) throw new Error("stop() was called already");
    stopped = true;
    clearTimeout(timer);
    markPhase(null);
    // Late echoes: as long as three of the slowest round trips seen, within 0.5 to 3 s (the CLI's).
    const drainMs = Math.min(3000, Math.max(500, 3 * maxRttMs));
    await new Promise((resolve) => setTimeout(resolve, drainMs));
    channel.close();
    pc.close();
    const round = (ms) => Math.round(ms * 1000) / 1000;
    return {
      rtc_id: answer.rtc_id,
      sent: sentAt.length,
      echoes: echoes.map(([seq, ms]) => [seq, round(ms)]),
      phases: Object.fromEntries(Object.entries(phases).map(([name, span]) => [name, span && span.map(round)])),
    };
  }

  return {
    rtcId: answer.rtc_id,
    markPhase,
    stop,
    idleOver,
    loadOver,
    setLoadSample: (sample) => { loadSample = typeof sample === "function" ? sample : null; },
    stats: () => ({ sent: sentAt.length, received: echoes.length }),
  };
}
