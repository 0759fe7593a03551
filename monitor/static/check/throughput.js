// Throughput against the monitor's probe endpoints, as the CLI measures it
// (agents/probes/throughput.py): `streams` parallel HTTP streams for `loadSeconds`, the bytes
// counted as a cumulative (time, bytes) series shared by the streams, and the rate taken between
// `rampSeconds` and `loadSeconds` (steadyRate below, sessionready/stats.py steady_rate), so TCP's
// slow start is left out.
//
// Download: GET /api/v1/probe/download?bytes=N, the body read as a stream (fetch's ReadableStream)
// and each chunk counted when it arrives; at the deadline the requests are aborted (hanging up is
// how the CLI ends a download phase too). Browsers without a readable response body (none of the
// current four) fall back to whole requests of a sized body, counted at completion.
//
// Upload: a streamed request body (fetch with a ReadableStream and duplex: "half") is not
// universal (Chromium only, and only over HTTP/2 or later), so each stream sends a sequence of
// sized POSTs of incompressible bytes (slices of one Blob). The request size grows (256 KiB
// doubling to 16 MiB) until one POST takes about 250 ms, and halves (down to 32 KiB) when one
// takes over 500 ms; the last POSTs are allowed to finish
// after the deadline (new ones are not started). A page cannot see its bytes cross the network
// (the CLI reads the kernel's acknowledged bytes), only the monitor's answer when a request is
// complete. Counting each request's bytes at that moment made a staircase of 256 KiB steps: on an
// 8 Mbit/s uplink shared by four streams the window's edges fell anywhere on a step, and three
// readings in the lab were 12 % low, 5 % low and 1 % above what TCP can carry through the link.
// Spreading each request's bytes evenly over the time the monitor spent receiving it was still
// 2-3 % off (a request's share of the link changes while others start and end). So the monitor
// answers with how its body arrived (`progress`: [seconds since it began receiving, bytes] about
// every 25 ms, and `duration_s`), the page places that record on its own clock with its end at
// the answer's arrival, and the rate is the bytes of all requests that arrived within
// [rampSeconds, loadSeconds], per second (spanRate). The answer's own delay (half a round trip,
// on the downstream that the upload leaves idle) shifts every request alike and cancels out of
// the rate. Without a usable record (another server), a request's bytes are spread from its
// start to its answer.
//
// How long: `loadSeconds` at most; earlier when `stop` (a Promise) resolves: the monitor's
// stopping rule (sessionready/settle.py, docs/browser-check.md section 3) ended the phase. The
// rate is then taken over [rampSeconds, the phase's end]. Meanwhile `onSample` is handed a
// function sample(nowMs) -> [phaseStartMs, atMs, bytes]: the cumulative bytes of the phase,
// complete up to atMs, for the probe stream to carry to the monitor (rtc.js setLoadSample). A
// download's bytes are counted as they arrive (complete up to now); an upload's only when each
// request is answered, so its series is complete up to the start of the oldest request still
// in flight.

const MIB = 1 << 20;
const DOWNLOAD_REQUEST_BYTES = 256 * MIB; // as the CLI: a stream that finishes one starts another
const FALLBACK_DOWNLOAD_BYTES = 4 * MIB;
const UPLOAD_START_BYTES = 256 * 1024;
// A request that takes over twice the target is halved, down to this: an upload's bytes are known
// only when its request is answered, so a long request delays what the monitor's rule can judge
// and holds up the phase's end (in the lab, 8 Mbit/s up shared by 4 streams behind a deep queue,
// an upload that the rule ended within its 6 s ran 7.8 s, its last requests still in flight).
const UPLOAD_MIN_BYTES = 32 * 1024;
const UPLOAD_MAX_BYTES = 16 * MIB;
const UPLOAD_TARGET_S = 0.25;
const UPLOAD_GRACE_S = 3; // the last POSTs may finish this long after the deadline, then are aborted

/** Bytes per second between startS and endS from cumulative [t_s, bytes] samples (null when
 * the samples do not cover a usable window). The same arithmetic as sessionready.stats.steady_rate. */
export function steadyRate(samples, startS, endS) {
  if (endS <= startS || samples.length < 2) return null;
  const start = Math.max(startS, samples[0][0]);
  const end = Math.min(endS, samples[samples.length - 1][0]);
  if (end - start <= 0) return null;
  return (cumulativeAt(samples, end) - cumulativeAt(samples, start)) / (end - start);
}

function cumulativeAt(samples, t) {
  let [previousT, previousBytes] = samples[0];
  for (const [sampleT, sampleBytes] of samples) {
    if (sampleT >= t) {
      if (sampleT === previousT) return sampleBytes;
      const share = (t - previousT) / (sampleT - previousT);
      return previousBytes + (sampleBytes - previousBytes) * share;
    }
    previousT = sampleT;
    previousBytes = sampleBytes;
  }
  return previousBytes;
}

/** Bytes per second between startS and endS from [startS, endS, bytes] spans, each span's bytes
 * spread evenly over it (null when the spans do not cover a usable window). */
export function spanRate(spans, startS, endS) {
  if (endS <= startS || spans.length === 0) return null;
  const start = Math.max(startS, Math.min(...spans.map(([a]) => a)));
  const end = Math.min(endS, Math.max(...spans.map(([, b]) => b)));
  if (end - start <= 0) return null;
  return (arrivedBy(spans, end) - arrivedBy(spans, start)) / (end - start);
}

/** The bytes of [startS, endS, bytes] spans that had arrived by tS, each spread evenly. */
export function arrivedBy(spans, tS) {
  return spans.reduce((sum, [a, b, bytes]) => sum + (b <= a ? (tS >= b ? bytes : 0) : bytes * Math.min(1, Math.max(0, (tS - a) / (b - a)))), 0);
}

/** An upload request's bytes as [startMs, endMs, bytes] spans on the page's clock: from the
 * monitor's record of how the body arrived (the answer's progress, its end at endedMs), else
 * the whole request, from beganMs to endedMs. */
export function receivedSpans(beganMs, endedMs, count, answer) {
  const whole = [[beganMs, endedMs, count]];
  const durationS = answer && answer.duration_s;
  if (!Number.isFinite(durationS) || durationS < 0 || durationS * 1000 > endedMs - beganMs || !Array.isArray(answer.progress)) return whole;
  const originMs = endedMs - durationS * 1000;
  const spans = [];
  let previousS = 0;
  let previousBytes = 0;
  for (const point of answer.progress) {
    if (!Array.isArray(point) || point.length !== 2) return whole;
    const [s, bytes] = point;
    if (!Number.isFinite(s) || !Number.isFinite(bytes) || s < previousS || s > durationS || bytes < previousBytes || bytes > count) return whole;
    if (bytes > previousBytes) spans.push([originMs + previousS * 1000, originMs + s * 1000, bytes - previousBytes]);
    previousS = s;
    previousBytes = bytes;
  }
  return previousBytes === count ? spans : whole;
}

class Meter {
  constructor(now) {
    this.now = now;
    this.start = now();
    this.total = 0;
    this.samples = [[0, 0]];
    this.spans = [];
  }
  add(count) {
    this.total += count;
    this.samples.push([(this.now() - this.start) / 1000, this.total]);
  }
  /** [startMs, endMs, bytes] spans on the page's clock (receivedSpans). */
  addSpans(spans) {
    for (const [startMs, endMs, count] of spans) {
      this.total += count;
      this.spans.push([(startMs - this.start) / 1000, (endMs - this.start) / 1000, count]);
    }
  }
}

class HttpStatusError extends Error {
  constructor(status) {
    super(`the monitor answered ${status}`);
    this.status = status;
  }
}

/** The contract's short code for why a direction could not be measured ([a-z][a-z0-9_]*). */
function describe(error) {
  if (error instanceof HttpStatusError) {
    if (error.status === 401) return "link_refused";
    if (error.status === 429) return "rate_limited";
    return `http_${error.status}`;
  }
  return "network_error";
}

function randomBlock(bytes) {
  // getRandomValues fills at most 65,536 bytes a call. Incompressible, so that no compressing
  // proxy flatters the upload.
  const block = new Uint8Array(bytes);
  for (let offset = 0; offset < bytes; offset += 65536) {
    crypto.getRandomValues(block.subarray(offset, Math.min(bytes, offset + 65536)));
  }
  return block;
}

async function downloadStream(authorization, meter, end, now, signal, answered) {
  const streaming = typeof ReadableStream !== "undefined" && "body" in Response.prototype;
  while (now() < end.at) {
    const size = streaming ? DOWNLOAD_REQUEST_BYTES : FALLBACK_DOWNLOAD_BYTES;
    const response = await fetch(`/api/v1/probe/download?bytes=${size}`, {
      headers: { Authorization: authorization },
      cache: "no-store",
      signal,
    });
    if (!response.ok) throw new HttpStatusError(response.status);
    answered();
    if (!streaming || !response.body) {
      const body = await response.arrayBuffer();
      meter.add(body.byteLength);
      continue;
    }
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      meter.add(value.byteLength);
      if (now() >= end.at) {
        await reader.cancel().catch(() => {});
        return;
      }
    }
  }
}

async function uploadStream(authorization, meter, end, now, signal, block, answered, inFlight) {
  let size = UPLOAD_START_BYTES;
  while (now() < end.at) {
    const request = { began: now() };
    const began = request.began;
    inFlight.add(request);
    let answer;
    let ended;
    try {
      const response = await fetch("/api/v1/probe/upload", {
        method: "POST",
        headers: { Authorization: authorization, "Content-Type": "application/octet-stream" },
        body: block.slice(0, size),
        cache: "no-store",
        signal,
      });
      if (!response.ok) throw new HttpStatusError(response.status);
      answered();
      // The monitor's {"received_bytes", "duration_s", "progress"}: the request is complete.
      answer = await response.json().catch(() => null);
      ended = now();
      meter.addSpans(receivedSpans(began, ended, size, answer));
    } finally {
      inFlight.delete(request);
    }
    const tookS = (ended - began) / 1000;
    if (tookS < UPLOAD_TARGET_S && size < UPLOAD_MAX_BYTES) size *= 2;
    else if (tookS > 2 * UPLOAD_TARGET_S && size > UPLOAD_MIN_BYTES) size /= 2;
  }
}

/**
 * Measure one direction. Returns {mbps, bytes, seconds, window_s, endedBy, error, status}; never throws for
 * network trouble (a failed measurement is data: mbps null and a short code in error).
 * @param {"down"|"up"} direction
 * @param {{streams: number, loadSeconds: number, rampSeconds: number, authorization: string}} options
 */
export async function measureThroughput(direction, { streams, loadSeconds, rampSeconds, authorization, now = () => performance.now(), stop = null, onSample = null }) {
  const meter = new Meter(now);
  // The phase's end: loadSeconds at the longest, or when `stop` resolves, whichever is first.
  const end = { at: meter.start + loadSeconds * 1000 };
  let wake;
  let endedBy = null; // "monitor": `stop` ended the phase; "length": loadSeconds did
  const ended = new Promise((resolve) => { wake = resolve; });
  const deadlineTimer = setTimeout(() => {
    endedBy = endedBy || "length";
    wake();
  }, loadSeconds * 1000);
  if (stop) {
    stop.then(() => {
      if (endedBy) return;
      endedBy = "monitor";
      end.at = Math.min(end.at, now());
      wake();
    });
  }
  const controller = new AbortController();
  const errors = [];
  const inFlight = new Set(); // the upload requests not answered yet: {began}
  if (onSample) {
    onSample(direction === "down"
      ? (nowMs) => [meter.start, nowMs, meter.total]
      : (nowMs) => {
        // Complete up to the oldest request in flight: every later answer's bytes arrive after it.
        const horizon = Math.max(meter.start, Math.min(nowMs, ...[...inFlight].map((r) => r.began)));
        return [meter.start, horizon, arrivedBy(meter.spans, (horizon - meter.start) / 1000)];
      });
  }
  // A Blob, not the ArrayBuffer: Chromium hands a Blob body to its network process by
  // reference, but copies an ArrayBuffer through IPC (measured in headless Chromium 156 on
  // loopback: 16 MiB in 1.5 s as an ArrayBuffer, 0.1 s as a Blob).
  const block = direction === "up" ? new Blob([randomBlock(UPLOAD_MAX_BYTES)]) : null;
  const run = (answered) => (direction === "down"
    ? downloadStream(authorization, meter, end, now, controller.signal, answered)
    : uploadStream(authorization, meter, end, now, controller.signal, block, answered, inFlight));
  const keep = (error) => { if (error.name !== "AbortError") errors.push(error); };
  // The other streams start once the first has its first answer: a refused link (401) or a
  // rate limit (429) then costs one refused request, not one per stream (the monitor counts
  // refused link secrets per address and then delays every link from that address). The
  // stagger is one request's answer time, inside the ramp that is not counted anyway.
  let first;
  const firstAnswer = new Promise((resolve) => { first = resolve; });
  const tasks = [run(() => first(true)).catch(keep).finally(() => first(false))];
  const ok = await Promise.race([firstAnswer, ended.then(() => false)]);
  for (let i = 1; ok && i < streams; i += 1) tasks.push(run(() => {}).catch(keep));
  // The downloads stop themselves at the end; the uploads finish the POST in flight.
  // Whatever still runs after the grace is aborted.
  const all = Promise.all(tasks);
  await Promise.race([all, ended]);
  clearTimeout(deadlineTimer);
  end.at = Math.min(end.at, now()); // (all streams failed before the end: the phase is over)
  const graceMs = (direction === "down" ? 5 : UPLOAD_GRACE_S) * 1000;
  let timer;
  await Promise.race([all, new Promise((resolve) => { timer = setTimeout(resolve, graceMs); })]);
  clearTimeout(timer);
  controller.abort();
  await all;
  const seconds = (now() - meter.start) / 1000;
  const windowEndS = (end.at - meter.start) / 1000;
  let rate = direction === "down" ? steadyRate(meter.samples, rampSeconds, windowEndS) : spanRate(meter.spans, rampSeconds, windowEndS);
  let error = null;
  if (rate === null || meter.total === 0) {
    error = errors.length ? describe(errors[0]) : "no_data";
    rate = null;
  } else if (errors.length === streams) {
    error = describe(errors[0]);
  }
  return {
    mbps: rate === null ? null : (rate * 8) / 1e6,
    bytes: meter.total,
    seconds,
    window_s: [rampSeconds, windowEndS], // the rate's window, seconds from the phase's start
    endedBy: endedBy || "streams", // "streams": every stream ended (failed) before either
    error,
    status: errors.length && errors[0] instanceof HttpStatusError ? errors[0].status : null,
  };
}
