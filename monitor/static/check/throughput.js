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
// sized POSTs of incompressible bytes (slices of one Blob), and a POST's bytes count when the
// monitor's answer arrives.
// The request size grows (256 KiB doubling to 16 MiB) until one POST takes about 250 ms. The
// error of counting at completion: a request's bytes land at its end instead of spread over it,
// so the cumulative series is a staircase; steadyRate interpolates linearly between completions
// and the last POSTs are allowed to finish after the deadline (new ones are not started), so the
// window's edges are interpolated within one request (about 250 ms) instead of being cut off. With
// a 3 s window the remaining error is the rate change within one request at each edge: a few
// per cent on a steady link. The time a POST's answer takes to come back (one RTT) shifts
// every completion by the same amount and cancels out of the rate.

const MIB = 1 << 20;
const DOWNLOAD_REQUEST_BYTES = 256 * MIB; // as the CLI: a stream that finishes one starts another
const FALLBACK_DOWNLOAD_BYTES = 4 * MIB;
const UPLOAD_START_BYTES = 256 * 1024;
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

class Meter {
  constructor(now) {
    this.now = now;
    this.start = now();
    this.total = 0;
    this.samples = [[0, 0]];
  }
  add(count) {
    this.total += count;
    this.samples.push([(this.now() - this.start) / 1000, this.total]);
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

async function downloadStream(authorization, meter, deadline, now, signal, answered) {
  const streaming = typeof ReadableStream !== "undefined" && "body" in Response.prototype;
  while (now() < deadline) {
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
      if (now() >= deadline) {
        await reader.cancel().catch(() => {});
        return;
      }
    }
  }
}

async function uploadStream(authorization, meter, deadline, now, signal, block, answered) {
  let size = UPLOAD_START_BYTES;
  while (now() < deadline) {
    const began = now();
    const response = await fetch("/api/v1/probe/upload", {
      method: "POST",
      headers: { Authorization: authorization, "Content-Type": "application/octet-stream" },
      body: block.slice(0, size),
      cache: "no-store",
      signal,
    });
    if (!response.ok) throw new HttpStatusError(response.status);
    answered();
    await response.arrayBuffer(); // the monitor's {"received_bytes", ...}: the request is complete
    meter.add(size);
    const tookS = (now() - began) / 1000;
    if (tookS < UPLOAD_TARGET_S && size < UPLOAD_MAX_BYTES) size *= 2;
  }
}

/**
 * Measure one direction. Returns {mbps, bytes, seconds, error, status}; never throws for
 * network trouble (a failed measurement is data: mbps null and a short code in error).
 * @param {"down"|"up"} direction
 * @param {{streams: number, loadSeconds: number, rampSeconds: number, authorization: string}} options
 */
export async function measureThroughput(direction, { streams, loadSeconds, rampSeconds, authorization, now = () => performance.now() }) {
  const meter = new Meter(now);
  const deadline = meter.start + loadSeconds * 1000;
  const controller = new AbortController();
  const errors = [];
  // A Blob, not the ArrayBuffer: Chromium hands a Blob body to its network process by
  // reference, but copies an ArrayBuffer through IPC (measured in headless Chromium 156 on
  // loopback: 16 MiB in 1.5 s as an ArrayBuffer, 0.1 s as a Blob).
  const block = direction === "up" ? new Blob([randomBlock(UPLOAD_MAX_BYTES)]) : null;
  const run = (answered) => (direction === "down"
    ? downloadStream(authorization, meter, deadline, now, controller.signal, answered)
    : uploadStream(authorization, meter, deadline, now, controller.signal, block, answered));
  const keep = (error) => { if (error.name !== "AbortError") errors.push(error); };
  // The other streams start once the first has its first answer: a refused link (401) or a
  // rate limit (429) then costs one refused request, not one per stream (the monitor counts
  // refused link secrets per address and then delays every link from that address). The
  // stagger is one request's answer time, inside the ramp that is not counted anyway.
  let first;
  const firstAnswer = new Promise((resolve) => { first = resolve; });
  const tasks = [run(() => first(true)).catch(keep).finally(() => first(false))];
  let wait;
  const noAnswer = new Promise((resolve) => { wait = setTimeout(() => resolve(false), Math.max(0, deadline - now())); });
  const ok = await Promise.race([firstAnswer, noAnswer]);
  clearTimeout(wait);
  for (let i = 1; ok && i < streams; i += 1) tasks.push(run(() => {}).catch(keep));
  // The downloads stop themselves at the deadline; the uploads finish the POST in flight.
  // Whatever still runs after the grace is aborted.
  const graceMs = (direction === "down" ? 5 : UPLOAD_GRACE_S) * 1000;
  let timer;
  const grace = new Promise((resolve) => { timer = setTimeout(resolve, deadline - now() + graceMs); });
  await Promise.race([Promise.all(tasks), grace]);
  clearTimeout(timer);
  controller.abort();
  await Promise.all(tasks);
  const seconds = (now() - meter.start) / 1000;
  let rate = steadyRate(meter.samples, rampSeconds, loadSeconds);
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
    error,
    status: errors.length && errors[0] instanceof HttpStatusError ? errors[0].status : null,
  };
}
