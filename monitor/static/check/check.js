// The check page: runs the steps, posts only numbers to the monitor, shows the monitor's verdict.
// Contract: docs/browser-check.md (sections 2-5). No inline script or style (the CSP forbids
// them), no third-party request, standard APIs only, each feature-detected.

import { runNetwork } from "./network.js";
import { browserFamily, checkCamera, deviceFacts, playTone } from "./devices.js";
import { canHearYourself, hearYourself, measureRoom, QUIET_PROMPT, SENTENCE, SPEECH_PROMPT } from "./room.js";

const SECRET_PATTERN = /^\/c\/([A-Za-z0-9_-]{16,128})\/?$/;
const THROUGHPUT_WORDS = {
  no_data: "no data moved",
  link_refused: "the check link was refused",
  rate_limited: "the server asked to slow down",
  network_error: "the connection failed",
};

// The verdict in the CLI's words (agents/render.py VERDICT_STYLE); symbol + word, never colour alone.
const VERDICTS = {
  ready: ["✔", "Ready", "Your connection looks good for a video session."],
  at_risk: ["!", "At risk", "The session may have glitches. The fixes below help."],
  not_ready: ["✖", "Not ready", "A video session is likely to fail. Please try the fixes below."],
};

const SEVERITY_WORDS = { critical: "Must fix", warning: "Should fix", info: "Good to know" };

const SENTENCES = {
  badLink: "This link is not complete. Please open the whole link from your message.",
  expired: "This check link has expired or was withdrawn. Please ask your practice for a new link.",
  tooMany: "Too many checks were run with this link in the last hour. Please try again later.",
  network: "The check could not reach your practice's server. Please check your internet connection and try again.",
  refused: "Your practice's server did not accept the results of this check. Please try again, or tell your practice.",
  server: "Your practice's server had a problem with this check. Please try again in a few minutes.",
};

const $ = (id) => document.getElementById(id);
// Words for the Network Information API's connection types (sent as the API says them).
const CONNECTION_WORDS = { ethernet: "cable", wifi: "Wi-Fi", cellular: "mobile data", wimax: "mobile data", bluetooth: "Bluetooth", mixed: "mixed", other: "other", none: "none", unknown: "unknown" };

class ApiError extends Error {
  constructor(status, sentence) {
    super(sentence);
    this.status = status;
  }
}

function sentenceFor(status) {
  if (status === 401 || status === 404 || status === 410) return SENTENCES.expired;
  if (status === 429) return SENTENCES.tooMany;
  if (status === 400 || status === 413 || status === 422) return SENTENCES.refused;
  return SENTENCES.server;
}

function secretFromPath() {
  const match = SECRET_PATTERN.exec(location.pathname);
  return match ? match[1] : null;
}

async function api(authorization, path, options = {}) {
  let response;
  try {
    response = await fetch(path, {
      ...options,
      headers: { Authorization: authorization, ...(options.body ? { "Content-Type": "application/json" } : {}) },
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, SENTENCES.network);
  }
  if (!response.ok) throw new ApiError(response.status, sentenceFor(response.status));
  try {
    return await response.json();
  } catch {
    throw new ApiError(response.status, SENTENCES.server);
  }
}

function announce(text) {
  // Clear first, so the same words twice are still read out.
  const live = $("live");
  live.textContent = "";
  setTimeout(() => { live.textContent = text; }, 50);
}

function setStep(step, state, text) {
  const item = document.querySelector(`[data-step="${step}"]`);
  item.dataset.state = state;
  item.querySelector(".step-state").textContent = text;
  const name = item.querySelector(".step-name").textContent;
  announce(`${name}: ${text}`);
}

function showError(sentence) {
  const error = $("error");
  error.textContent = sentence;
  error.hidden = false;
}

function fmt(value, unit, digits = 1) {
  return typeof value === "number" && Number.isFinite(value) ? `${value.toFixed(digits)}${unit ? ` ${unit}` : ""}` : "not measured";
}

/** Show a question or instruction with buttons; resolves with the chosen button's value. */
function ask(text, buttons) {
  const prompt = $("prompt");
  $("prompt-text").textContent = text;
  const box = $("prompt-buttons");
  box.replaceChildren();
  prompt.hidden = false;
  announce(text);
  if (!buttons.length) return Promise.resolve(null);
  return new Promise((resolve) => {
    for (const [label, value] of buttons) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      button.addEventListener("click", () => resolve(value));
      box.append(button);
    }
    box.firstElementChild.focus();
  });
}

function hidePrompt() {
  $("prompt").hidden = true;
  $("prompt-buttons").replaceChildren();
}

// --- the run ----------------------------------------------------------------------------------

function rtcText(error) {
  return {
    rtc_unsupported: "not measured: this browser cannot run the test",
    rtc_blocked: "not measured: your network blocks the test",
    rtc_failed: "not measured: the test could not run",
  }[error] || "not measured";
}

async function run(state) {
  const { authorization, link } = state;
  const startedWall = new Date();
  const started = performance.now();
  const facts = deviceFacts();

  // 1-3. The network part (network.js): the idle probe stream, then download and upload with
  // the stream still running; each phase ended by the monitor's rule when adaptive.
  const network = await runNetwork({
    secret: state.secret,
    link,
    authorization,
    onStep: (step, stepState, detail) => {
      if (stepState === "running") setStep(step, "running", "measuring…");
      else if (step === "connection") setStep(step, stepState, stepState === "done" ? "done" : rtcText(detail));
      else setStep(step, stepState, detail.mbps === null ? `not measured: ${THROUGHPUT_WORDS[detail.error] || detail.error}` : fmt(detail.mbps, "Mbit/s"));
    },
  });
  if (network.refused) throw new ApiError(401, SENTENCES.expired);
  const result = { down: network.down, up: network.up };
  const rtcDone = network.rtc;

  // 4. Camera.
  setStep("camera", "running", "checking…");
  const camera = await checkCamera($("preview"));
  setStep("camera", camera.state === "ok" ? (camera.black ? "problem" : "done") : "problem", cameraText(camera));

  // 5. Microphone and room.
  setStep("room", "running", "listening…");
  const measured = await measureRoom(state.audio, {
    prompt: (phase) => {
      if (phase === "quiet") ask(QUIET_PROMPT, []);
      if (phase === "speech") ask(`${SPEECH_PROMPT} “${SENTENCE}”`, []);
    },
  });
  hidePrompt();
  setStep("room", measured.microphone.state === "ok" && measured.room.available ? "done" : "problem", roomText(measured));

  // 6. Speaker.
  let speaker = "not_tested";
  if (state.audio) {
    setStep("speaker", "running", "playing a tone…");
    for (;;) {
      try {
        await playTone(state.audio);
      } catch {
        break;
      }
      const answer = await ask("Did you hear the tone?", [["Yes", "heard"], ["No", "not_heard"], ["Play it again", "again"]]);
      if (answer !== "again") {
        speaker = answer;
        break;
      }
    }
    hidePrompt();
  }
  setStep("speaker", speaker === "heard" ? "done" : "problem", { heard: "heard", not_heard: "not heard", not_tested: "not tested" }[speaker]);

  // One short code (the contract's throughput.error); which direction failed shows as its null rate.
  const throughputError = result.down.error || result.up.error || null;
  const browser = browserFamily();
  const body = {
    schema_version: 1,
    started_at: startedWall.toISOString().replace(/\.\d{3}Z$/, "Z"),
    duration_s: Math.round((performance.now() - started) / 100) / 10,
    browser,
    rtc: rtcDone.record ? { rtc_id: rtcDone.record.rtc_id, sent: rtcDone.record.sent, echoes: rtcDone.record.echoes, phases: rtcDone.record.phases } : null,
    rtc_error: rtcDone.record ? null : rtcDone.error,
    throughput: {
      down_mbps: result.down.mbps === null ? null : Math.round(result.down.mbps * 100) / 100,
      up_mbps: result.up.mbps === null ? null : Math.round(result.up.mbps * 100) / 100,
      error: throughputError,
    },
    devices: {
      camera: { state: camera.state, width: camera.width, height: camera.height, fps: camera.fps, black: camera.black },
      microphone: measured.microphone,
      speaker: { state: speaker },
    },
    room: measured.room,
    device: await facts,
  };
  const answer = await api(authorization, "/api/v1/link/checks", { method: "POST", body: JSON.stringify(body) });
  return { body, answer, local: { camera, measured } };
}

function cameraText(camera) {
  return {
    ok: camera.black ? "the picture is black" : `${camera.width}×${camera.height}, ${fmt(camera.fps, "frames/s", 0)}`,
    denied: "not allowed: the browser was not given permission to use the camera",
    absent: "no camera was found",
    error: "the camera could not be started: another app may be using it",
    not_tested: "not tested: this browser cannot use a camera here",
  }[camera.state];
}

function roomText(measured) {
  const { microphone, room } = measured;
  if (microphone.state === "denied") return "not allowed: the browser was not given permission to use the microphone";
  if (microphone.state === "absent") return "no microphone was found";
  if (microphone.state === "not_tested") return "not tested: this browser cannot use a microphone here";
  if (microphone.state === "error") return "the microphone could not be started: another app may be using it";
  if (!room.available) return "the microphone opened, but the room could not be measured";
  if (room.silent) return "no sound: the microphone may be muted";
  return `room ${fmt(room.laeq_dbfs, "dBFS(A)")}`;
}

function microphoneText(microphone, room) {
  if (microphone.state !== "ok") return roomText({ microphone, room });
  if (microphone.signal === true) return "sound arrives";
  return microphone.signal === false ? "no sound arrives: it may be muted" : "opened; its sound was not measured";
}

// --- the result -----------------------------------------------------------------------------

function row(list, label, value) {
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  dd.textContent = value;
  list.append(dt, dd);
}

function pct(value) {
  return typeof value === "number" ? `${(value * 100).toFixed(2)} %` : "not measured";
}

function render({ body, answer: stored }) {
  $("progress").hidden = true;
  // 201 {"check_id", "received_at", "report"}: the stored report in the monitor's own words.
  const answer = stored && stored.report ? stored.report : {};
  const verdict = VERDICTS[answer.verdict];
  const box = $("verdict");
  box.className = `verdict ${verdict ? answer.verdict : "unknown"}`;
  $("verdict-title").textContent = verdict ? `${verdict[0]} ${verdict[1]}` : String(answer.verdict || "No verdict");
  $("verdict-sentence").textContent = verdict ? verdict[2] : "";
  const reasons = $("reasons");
  reasons.replaceChildren();
  for (const reason of Array.isArray(answer.reasons) ? answer.reasons : []) {
    const item = document.createElement("li");
    // In words, as the CLI marks them (agents/render.py): what the verdict rests on, and what is
    // only for information (a device the person chose not to have checked, a short test).
    const severity = document.createElement("span");
    severity.className = "severity";
    severity.textContent = SEVERITY_WORDS[reason.severity] || "";
    const message = document.createElement("span");
    message.className = "message";
    message.textContent = reason.message;
    const fix = document.createElement("span");
    fix.textContent = `What to do: ${reason.fix}`;
    item.append(severity, message, fix);
    reasons.append(item);
  }
  const list = $("numbers-list");
  list.replaceChildren();
  const network = answer.network || {};
  if (network.rtt_ms) row(list, "Round trip", `${fmt(network.rtt_ms.p50, "ms")} typical (min ${fmt(network.rtt_ms.min, "ms")}, 95 % under ${fmt(network.rtt_ms.p95, "ms")})`);
  else row(list, "Round trip", rtcText(body.rtc_error));
  // The figure the verdict judged (mean |D|); RFC 3550's J only where the monitor gave no mean.
  const jitter = network.jitter_mean_ms || network.jitter_ms;
  if (jitter) row(list, "Jitter", `up ${fmt(jitter.up, "ms")}, down ${fmt(jitter.down, "ms")}`);
  if (network.loss) row(list, "Packet loss", `up ${pct(network.loss.up)}, down ${pct(network.loss.down)}`);
  row(list, "Download", fmt(body.throughput.down_mbps, "Mbit/s"));
  row(list, "Upload", fmt(body.throughput.up_mbps, "Mbit/s"));
  if (network.loaded_latency_ms) row(list, "Delay when busy", `${fmt(network.loaded_latency_ms.down, "ms")} downloading, ${fmt(network.loaded_latency_ms.up, "ms")} uploading`);
  const quality = answer.quality;
  if (quality) row(list, "Call quality", `MOS ${fmt(quality.mos, "", 2)}, video up to ${String(quality.video_tier || "not measured").replace(/_/g, " ")}`);
  const { camera, microphone, speaker } = body.devices;
  row(list, "Camera", cameraText(camera));
  row(list, "Microphone", microphoneText(microphone, body.room));
  const room = body.room;
  if (room.available && !room.silent) {
    row(list, "Room noise", `${fmt(room.laeq_dbfs, "dBFS(A)")} average, floor ${fmt(room.l90_dbfs, "dBFS(A)")}, peaks ${fmt(room.l10_dbfs, "dBFS(A)")}, loudest ${fmt(room.lmax_dbfs, "dBFS(A)")}`);
    row(list, "Other voices", room.voice_ratio === null ? "not measured" : `${(room.voice_ratio * 100).toFixed(0)} % of the time`);
    row(list, "Your voice", room.snr_db === null ? "not heard clearly while reading" : `${room.snr_db.toFixed(0)} dB above the room`);
  } else {
    row(list, "Room", "not measured");
  }
  row(list, "Speaker", { heard: "you heard the tone", not_heard: "you did not hear the tone", not_tested: "not tested" }[speaker.state]);
  const d = body.device;
  row(list, "Computer", `${d.cores === null ? "cores not measured" : `${d.cores} cores`}, ${d.memory_gb === null ? "memory not measured" : `${d.memory_gb} GB memory`}`);
  row(list, "Battery", d.battery_pct === null ? "not measured" : `${d.battery_pct.toFixed(0)} % (${d.battery_charging ? "charging" : "on battery"})`);
  row(list, "Connection type", d.connection_type === null ? "not measured" : CONNECTION_WORDS[d.connection_type] || d.connection_type);
  $("result").hidden = false;
  $("verdict-title").focus();
  announce(`${verdict ? verdict[1] : "Done"}. ${verdict ? verdict[2] : ""}`);
}

// --- start ------------------------------------------------------------------------------------

async function loadLink(state) {
  try {
    state.link = await api(state.authorization, "/api/v1/link");
  } catch (error) {
    showError(error.message);
    return false;
  }
  $("start").disabled = false;
  return true;
}

function init() {
  const secret = secretFromPath();
  const state = { secret: null, authorization: null, link: null, audio: null, running: false };
  if (!secret) {
    showError(SENTENCES.badLink);
    return;
  }
  state.secret = secret;
  state.authorization = `Link ${secret}`;
  loadLink(state);

  const start = async () => {
    if (state.running || !state.link) return;
    state.running = true;
    $("error").hidden = true;
    // The audio context is made on the person's click: browsers only let a page play sound
    // (the tone) and run audio after a gesture.
    const Context = window.AudioContext || window.webkitAudioContext;
    if (Context && !state.audio) {
      try {
        state.audio = new Context();
      } catch {
        state.audio = null;
      }
    }
    $("intro").hidden = true;
    $("result").hidden = true;
    for (const item of document.querySelectorAll("[data-step]")) {
      item.dataset.state = "waiting";
      item.querySelector(".step-state").textContent = "waiting";
    }
    $("progress").hidden = false;
    $("progress-title").focus();
    try {
      render(await run(state));
    } catch (error) {
      $("progress").hidden = true;
      hidePrompt();
      showError(error instanceof ApiError ? error.message : SENTENCES.server);
      $("intro").hidden = false;
    } finally {
      state.running = false;
      if (state.audio) state.audio.suspend().catch(() => {});
    }
  };
  $("start").addEventListener("click", start);
  $("again").addEventListener("click", start);
  if (canHearYourself()) {
    const words = {
      recording: "Recording: say a few words…",
      playing: "Playing back…",
      done: "Done. The recording is deleted.",
      denied: "The browser was not given permission to use the microphone.",
      error: "The recording could not be made or played.",
    };
    const button = $("hear-start");
    button.addEventListener("click", async () => {
      if (state.running) return;
      button.disabled = true;
      await hearYourself(5, (s) => { $("hear-state").textContent = words[s]; }, $("hear-player"));
      button.disabled = false;
    });
    $("hear").hidden = false;
  }
}

init();
