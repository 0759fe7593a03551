// The room, measured in the browser as the CLI measures it (docs/room.md): the microphone with
// the browser's echo cancellation, noise suppression and automatic gain control off, analysed by
// an AudioWorklet (room-worklet.js) in a quiet part and a part where the person reads a sentence.
// Only numbers come back from the worklet, and only numbers leave the page.

// IEC 61672-1 annex E pole frequencies (Hz), as agents/probes/room/weighting.py.
const F1 = 20.598997;
const F2 = 107.65265;
const F3 = 737.86223;
const F4 = 12194.217;

export const SENTENCE = "A bright morning light came through the window and fell across the table.";
export const QUIET_PROMPT = "Please stay quiet for a few seconds while we listen to your room.";
export const SPEECH_PROMPT = "Now please read this sentence aloud in your normal speaking voice:";

const SETTLE_S = 0.5;
const QUIET_S = 3.0;
const SPEECH_S = 5.0;
const SILENT_BELOW_DB = -90.0;
const MIN_SPEECH_VOICE_S = 0.3;
const SNR_FLOOR_DB = -20.0;
const MIN_MEASURED_S = 0.5;

/** |A(f)| in dB, 0 dB at 1 kHz (the analytic formula). */
export function aWeightingDb(f) {
  const g = (f2) => (F4 ** 2 * f2 ** 2) / ((f2 + F1 ** 2) * Math.sqrt((f2 + F2 ** 2) * (f2 + F3 ** 2)) * (f2 + F4 ** 2));
  return 20 * Math.log10(g(f * f) / g(1e6));
}

function sectionResponse(sections, f, fs) {
  // |H(e^jw)| of a cascade of biquads, numerators b and denominators a (a[0] = 1).
  const w = (2 * Math.PI * f) / fs;
  const c1 = Math.cos(w), s1 = Math.sin(w), c2 = Math.cos(2 * w), s2 = Math.sin(2 * w);
  let magnitude = 1;
  for (const { b, a } of sections) {
    const nr = b[0] + b[1] * c1 + b[2] * c2, ni = -(b[1] * s1 + b[2] * s2);
    const dr = a[0] + a[1] * c1 + a[2] * c2, di = -(a[1] * s1 + a[2] * s2);
    magnitude *= Math.sqrt((nr * nr + ni * ni) / (dr * dr + di * di));
  }
  return magnitude;
}

/**
 * A-weighting for sample rate fs as three biquads (an IIR) and a gain that makes 1 kHz 0 dB.
 *
 * The CLI filters at 16 kHz with a minimum-phase FIR made from the exact formula (see
 * docs/room.md for why not the bilinear IIR there); an audio thread in JavaScript has no fast
 * FFT, and a browser's context runs at 44.1 or 48 kHz, where a recursive filter is accurate:
 * - the two high-pass pairs (poles at 20.6 Hz twice, and at 107.7 and 737.9 Hz) through the
 *   bilinear transform, which is exact enough far below Nyquist (within 0.02 dB);
 * - the 12.2 kHz double pole, which the bilinear transform would squeeze towards Nyquist
 *   (-0.5 dB at 8 kHz, -1.2 dB at 10 kHz at 48 kHz), by the matched z-transform (pole at
 *   exp(-2 pi F4 / fs)) with a double zero at -c, c chosen here by a search so the whole
 *   response is closest to the formula from 20 Hz to min(16 kHz, 0.45 fs) (minimax, 300
 *   log-spaced points).
 * Result: within 0.14 dB of the formula at 48 kHz and 0.2 dB at 44.1 kHz over that range
 * (maxDeviationDb says the figure for this fs; a test checks it against the formula in Python).
 */
export function aWeightingDesign(fs) {
  const K = 2 * fs;
  const w = [F1, F2, F3, F4].map((f) => 2 * Math.PI * f);
  const highPass = (a, b) => {
    const p = K + a, q = K - a, r = K + b, t = K - b;
    return { b: [1, -2, 1], a: [1, -(p * t + q * r) / (p * r), (q * t) / (p * r)] };
  };
  const e = Math.exp(-w[3] / fs);
  const lowPass = (c) => ({ b: [1, 2 * c, c * c], a: [1, -2 * e, e * e] });
  const fixed = [highPass(w[0], w[0]), highPass(w[1], w[2])];
  const top = Math.min(16000, 0.45 * fs);
  const freqs = [];
  for (let i = 0; i < 300; i += 1) freqs.push(20 * (top / 20) ** (i / 299));
  const exact = freqs.map(aWeightingDb);
  const deviation = (sections) => {
    const at1k = sectionResponse(sections, 1000, fs);
    let worst = 0;
    freqs.forEach((f, i) => {
      const d = Math.abs(20 * Math.log10(sectionResponse(sections, f, fs) / at1k) - exact[i]);
      if (d > worst) worst = d;
    });
    return worst;
  };
  let best = { c: 0, dev: Infinity };
  for (let i = 0; i <= 1000; i += 1) {
    const c = i / 1000;
    const dev = deviation([...fixed, lowPass(c)]);
    if (dev < best.dev) best = { c, dev };
  }
  const sections = [...fixed, lowPass(best.c)];
  return { sections, gain: 1 / sectionResponse(sections, 1000, fs), zero: best.c, maxDeviationDb: best.dev, sampleRate: fs };
}

function round2(value) {
  return value === null || value === undefined ? null : Math.round(value * 100) / 100;
}

function powerDb(power) {
  return 10 * Math.log10(Math.max(power, 1e-20));
}

export function emptyRoom(problem) {
  return {
    available: false, problem, mode: "interactive", laeq_dbfs: null, l90_dbfs: null, l10_dbfs: null,
    lmax_dbfs: null, voice_ratio: null, snr_db: null, speech_detected: null, silent: false, clipping_ratio: null,
  };
}

/** The room result from the worklet's two summaries, as the CLI's _result (probe.py). */
export function roomResult(quiet, speech) {
  if (!quiet || quiet.duration_s < MIN_MEASURED_S) return emptyRoom("device_error");
  const samples = quiet.samples + (speech ? speech.samples : 0);
  const deviation = quiet.deviation_rms_db !== null && speech
    ? powerDb((10 ** (quiet.deviation_rms_db / 10) * quiet.samples + 10 ** (speech.deviation_rms_db / 10) * speech.samples) / samples)
    : quiet.deviation_rms_db;
  const silent = deviation !== null && deviation < SILENT_BELOW_DB;
  const level = (v) => (v === null || silent ? null : round2(v));
  let snr = null;
  let speechDetected = false;
  if (!silent && speech && speech.duration_s && speech.voice_s >= MIN_SPEECH_VOICE_S && speech.active_mean_power !== null) {
    speechDetected = true;
    // Speech and room noise add as powers: the quiet part's mean power comes off.
    const excess = speech.active_mean_power - quiet.mean_power;
    snr = excess > 0 && quiet.l90_db !== null ? Math.max(SNR_FLOOR_DB, powerDb(excess) - quiet.l90_db) : SNR_FLOOR_DB;
  }
  const clipped = quiet.clipped + (speech ? speech.clipped : 0);
  return {
    available: true,
    problem: null,
    mode: "interactive",
    laeq_dbfs: level(quiet.laeq_db),
    l90_dbfs: level(quiet.l90_db),
    l10_dbfs: level(quiet.l10_db),
    lmax_dbfs: level(quiet.lmax_db),
    voice_ratio: silent ? null : Math.round(quiet.voice_ratio * 10000) / 10000,
    snr_db: snr === null || silent ? null : round2(snr),
    speech_detected: speechDetected,
    silent,
    clipping_ratio: Math.round((clipped / samples) * 1e6) / 1e6,
  };
}

export function roomProblem(state) {
  return { denied: "not_allowed", absent: "no_device" }[state] || "device_error";
}

/**
 * Open the microphone, measure the room, close the microphone.
 * @param {AudioContext} context created on the person's click (autoplay rules)
 * @param {{prompt: (phase: string) => void}} hooks shows "stay quiet" / the sentence
 * @returns {Promise<{microphone: {state: string, signal: boolean|null}, room: object, sampleRate: number|null}>}
 */
export async function measureRoom(context, hooks) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return { microphone: { state: "not_tested", signal: null }, room: emptyRoom("device_error"), sampleRate: null };
  }
  if (!context || !context.audioWorklet) {
    // Without AudioWorklet (very old browsers) the room is not measured; the microphone still is not.
    return { microphone: { state: "not_tested", signal: null }, room: emptyRoom("device_error"), sampleRate: null };
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
      video: false,
    });
  } catch (error) {
    const { mediaErrorState } = await import("./devices.js");
    const state = mediaErrorState(error);
    return { microphone: { state, signal: null }, room: emptyRoom(roomProblem(state)), sampleRate: null };
  }
  let source = null;
  let node = null;
  let sink = null;
  try {
    const { audioRunning } = await import("./devices.js");
    if (!(await audioRunning(context))) {
      return { microphone: { state: "ok", signal: null }, room: emptyRoom("device_error"), sampleRate: null };
    }
    const fs = context.sampleRate;
    const design = aWeightingDesign(fs);
    await context.audioWorklet.addModule("/c/static/room-worklet.js");
    source = context.createMediaStreamSource(stream);
    node = new AudioWorkletNode(context, "sessionready-room", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      channelCount: 1,
      channelCountMode: "explicit",
      channelInterpretation: "speakers",
      processorOptions: { sections: design.sections, gain: design.gain, settleSeconds: SETTLE_S, quietSeconds: QUIET_S, speechSeconds: SPEECH_S },
    });
    // A silent path to the output keeps the graph pulling the processor in every browser.
    sink = context.createGain();
    sink.gain.value = 0;
    source.connect(node).connect(sink).connect(context.destination);
    const limitMs = (SETTLE_S + QUIET_S + SPEECH_S + 8) * 1000;
    const done = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), limitMs);
      node.port.onmessage = ({ data }) => {
        if (data.type === "phase") hooks.prompt(data.phase);
        if (data.type === "done") {
          clearTimeout(timer);
          resolve(data);
        }
      };
    });
    // The microphone opened (getUserMedia answered): when the page's own listening fails after
    // that, the microphone is "ok" with its signal not measured, never "error" (which the
    // quality model reads as a microphone that could not be started).
    if (done === null) {
      return { microphone: { state: "ok", signal: null }, room: emptyRoom("device_error"), sampleRate: fs, design };
    }
    const room = roomResult(done.quiet, done.speech);
    return { microphone: { state: "ok", signal: room.available ? !room.silent : null }, room, sampleRate: fs, design };
  } catch (error) {
    return { microphone: { state: "ok", signal: null }, room: emptyRoom("device_error"), sampleRate: null };
  } finally {
    if (node) node.port.onmessage = null;
    for (const n of [source, node, sink]) if (n) n.disconnect();
    for (const track of stream.getTracks()) track.stop();
  }
}

export function canHearYourself() {
  return Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && typeof MediaRecorder === "function");
}

/**
 * "Hear yourself": record a few seconds from the microphone and play them back, on this device
 * only. The recording lives in memory as a Blob behind a blob: URL for as long as it plays; the
 * URL is revoked and the Blob dropped after. Nothing is sent anywhere and nothing of it enters
 * the check's numbers.
 * @param {(state: "recording"|"playing"|"done"|"denied"|"error") => void} onState
 */
export async function hearYourself(seconds, onState, player) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      video: false,
    });
  } catch (error) {
    const { mediaErrorState } = await import("./devices.js");
    onState(mediaErrorState(error) === "denied" ? "denied" : "error");
    return;
  }
  let url = null;
  try {
    const recorder = new MediaRecorder(stream);
    const chunks = [];
    recorder.ondataavailable = (event) => { if (event.data && event.data.size) chunks.push(event.data); };
    const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
    onState("recording");
    recorder.start();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    recorder.stop();
    await stopped;
    for (const track of stream.getTracks()) track.stop();
    url = URL.createObjectURL(new Blob(chunks, { type: recorder.mimeType || "audio/webm" }));
    chunks.length = 0;
    player.src = url;
    onState("playing");
    await player.play();
    await new Promise((resolve) => { player.onended = resolve; player.onerror = resolve; });
    onState("done");
  } catch {
    onState("error");
  } finally {
    for (const track of stream.getTracks()) track.stop();
    player.removeAttribute("src");
    player.load();
    if (url) URL.revokeObjectURL(url);
  }
}
