// Camera, microphone permission errors, speaker tone, and what the browser says about the
// machine. Standard APIs only, each feature-detected: what a browser does not offer is null
// ("not measured"), never a guess.

const FPS_WINDOW_MS = 2000;
const BLACK_LUMA = 16; // mean luma (0..255) below this on every sampled frame: a black picture
const FLAT_LUMA = 3; // ... and almost no variation within the frame

/** The state a failed getUserMedia maps to (docs/browser-check.md section 4 device states). */
export function mediaErrorState(error) {
  const name = error && error.name;
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") return "denied";
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") return "absent";
  return "error";
}

export function mediaAvailable() {
  return Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Frames the video element presents in FPS_WINDOW_MS: requestVideoFrameCallback where the
 * browser has it (Chrome, Edge, Safari; Firefox from 132), else null (the track's own
 * frameRate setting is reported instead). */
function measureFps(video) {
  if (typeof video.requestVideoFrameCallback !== "function") return Promise.resolve(null);
  return new Promise((resolve) => {
    let first = null;
    let last = null;
    let frames = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      if (first === null || last === null || frames < 2 || last.time <= first.time) {
        resolve(null);
        return;
      }
      // presentedFrames counts frames the compositor showed; fall back to our own count.
      const presented = last.presented != null && first.presented != null ? last.presented - first.presented : frames - 1;
      resolve((presented * 1000) / (last.time - first.time));
    };
    const onFrame = (now, metadata) => {
      const sample = { time: now, presented: metadata ? metadata.presentedFrames : null };
      if (first === null) first = sample;
      last = sample;
      frames += 1;
      if (now - first.time >= FPS_WINDOW_MS) finish();
      else video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
    setTimeout(finish, FPS_WINDOW_MS + 1500);
  });
}

/** Mean and spread of luma on a small copy of the current frame. */
function frameLuma(video, canvas) {
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(video, 0, 0, canvas.width, canvas.height);
  const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
  let sum = 0;
  let sumSquares = 0;
  const pixels = data.length / 4;
  for (let i = 0; i < data.length; i += 4) {
    const luma = 0.2126 * data[i] + 0.7152 * data[i + 1] + 0.0722 * data[i + 2];
    sum += luma;
    sumSquares += luma * luma;
  }
  const mean = sum / pixels;
  return { mean, spread: Math.sqrt(Math.max(0, sumSquares / pixels - mean * mean)) };
}

/**
 * Open the camera, read what it delivers, and close it.
 * @param {HTMLVideoElement} video a visible element: the person sees themself while it runs
 * @returns {Promise<{state: string, width: number|null, height: number|null, fps: number|null,
 *   black: boolean|null, fps_source: string|null}>}
 */
export async function checkCamera(video) {
  const empty = { width: null, height: null, fps: null, black: null, fps_source: null };
  if (!mediaAvailable()) return { state: "not_tested", ...empty };
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
      audio: false,
    });
  } catch (error) {
    return { state: mediaErrorState(error), ...empty };
  }
  try {
    const [track] = stream.getVideoTracks();
    if (!track) return { state: "absent", ...empty };
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    const canvas = document.createElement("canvas");
    canvas.width = 64;
    canvas.height = 36;
    const fpsPromise = measureFps(video);
    const lumas = [];
    for (let i = 0; i < 3; i += 1) {
      await sleep(500);
      if (video.videoWidth) lumas.push(frameLuma(video, canvas));
    }
    const measured = await fpsPromise;
    const settings = track.getSettings ? track.getSettings() : {};
    const width = settings.width || video.videoWidth || null;
    const height = settings.height || video.videoHeight || null;
    let fps = null;
    let source = null;
    if (measured !== null && Number.isFinite(measured)) {
      fps = measured;
      source = "measured";
    } else if (typeof settings.frameRate === "number") {
      fps = settings.frameRate;
      source = "track settings";
    }
    const black = lumas.length ? lumas.every((l) => l.mean < BLACK_LUMA && l.spread < FLAT_LUMA) : null;
    return {
      state: "ok",
      width,
      height,
      fps: fps === null ? null : Math.round(fps * 10) / 10,
      black,
      fps_source: source,
    };
  } catch (error) {
    return { state: "error", ...empty };
  } finally {
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
    video.hidden = true;
  }
}

/**
 * Whether the page's AudioContext runs, resuming it if need be, within ``timeoutMs``. A browser
 * with no sound output it can open never starts its context, and resume() then never settles
 * (Firefox 153 on a machine without a sound server, measured): the step that needs the context
 * gives up instead of waiting for ever.
 */
export async function audioRunning(audioContext, timeoutMs = 3000) {
  if (audioContext.state === "running") return true;
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs); });
  await Promise.race([audioContext.resume().catch(() => {}), late]);
  clearTimeout(timer);
  return audioContext.state === "running";
}

/** Play a 1 s, 660 Hz tone at a moderate level through the default output. */
export async function playTone(audioContext) {
  if (!(await audioRunning(audioContext))) throw new Error("the browser's audio does not run");
  const oscillator = audioContext.createOscillator();
  const gain = audioContext.createGain();
  oscillator.type = "sine";
  oscillator.frequency.value = 660;
  const t = audioContext.currentTime;
  // Short fades: no click at the start and end.
  gain.gain.setValueAtTime(0, t);
  gain.gain.linearRampToValueAtTime(0.25, t + 0.05);
  gain.gain.setValueAtTime(0.25, t + 0.95);
  gain.gain.linearRampToValueAtTime(0, t + 1.0);
  oscillator.connect(gain).connect(audioContext.destination);
  oscillator.start(t);
  oscillator.stop(t + 1.05);
  await new Promise((resolve) => { oscillator.onended = resolve; });
  oscillator.disconnect();
  gain.disconnect();
}

// The Network Information API's types, sent as it says them (Chromium only; the monitor maps
// them onto the report's link types).
const CONNECTION_TYPES = new Set(["bluetooth", "cellular", "ethernet", "mixed", "none", "other", "unknown", "wifi", "wimax"]);

/** Compute Pressure: the first state the observer reports, within 1.5 s; null without it. */
async function computePressure() {
  if (typeof PressureObserver !== "function") return null;
  try {
    if (PressureObserver.knownSources && !PressureObserver.knownSources.includes("cpu")) return null;
    return await new Promise((resolve) => {
      let observer;
      const timer = setTimeout(() => { observer && observer.disconnect(); resolve(null); }, 1500);
      observer = new PressureObserver((records) => {
        const last = records[records.length - 1];
        clearTimeout(timer);
        observer.disconnect();
        resolve(last && typeof last.state === "string" ? last.state : null);
      });
      observer.observe("cpu").catch(() => { clearTimeout(timer); resolve(null); });
    });
  } catch {
    return null;
  }
}

/** What the browser offers about the machine; null for each thing it does not offer. */
export async function deviceFacts() {
  const facts = { cores: null, memory_gb: null, battery_pct: null, battery_charging: null, connection_type: null, compute_pressure: null };
  if (Number.isInteger(navigator.hardwareConcurrency) && navigator.hardwareConcurrency > 0) facts.cores = navigator.hardwareConcurrency;
  // deviceMemory is rounded and capped by the browser, and offered by Chromium only.
  if (typeof navigator.deviceMemory === "number" && navigator.deviceMemory > 0) facts.memory_gb = navigator.deviceMemory;
  if (typeof navigator.getBattery === "function") {
    try {
      const battery = await navigator.getBattery();
      // A desktop without a battery reports level 1 and charging: that is "no battery", not 100 %.
      const noBattery = battery.charging && battery.level === 1 && battery.chargingTime === 0;
      if (!noBattery && typeof battery.level === "number") {
        facts.battery_pct = Math.round(battery.level * 1000) / 10;
        facts.battery_charging = Boolean(battery.charging);
      }
    } catch {
      // not allowed here (permissions policy): not measured
    }
  }
  const connection = navigator.connection;
  if (connection && typeof connection.type === "string" && CONNECTION_TYPES.has(connection.type)) {
    facts.connection_type = connection.type;
  }
  facts.compute_pressure = await computePressure();
  return facts;
}

/** Only the browser's family and major version (userAgentData where present, else the UA). */
export function browserFamily() {
  const data = navigator.userAgentData;
  if (data && Array.isArray(data.brands) && data.brands.length) {
    const find = (name) => data.brands.find((brand) => brand.brand === name);
    const pick = find("Microsoft Edge") ? ["edge", find("Microsoft Edge")]
      : find("Google Chrome") ? ["chrome", find("Google Chrome")]
      : find("Chromium") ? ["chrome", find("Chromium")]
      : null;
    if (pick) {
      const major = parseInt(pick[1].version, 10);
      if (major >= 1 && major <= 999) return { family: pick[0], major };
    }
  }
  return parseUserAgent(navigator.userAgent || "");
}

/** Family and major version from a User-Agent string. Order matters: Edge and Opera also say
 * "Chrome/", Chrome says "Safari/", and iOS browsers say their own token (CriOS, FxiOS, EdgiOS). */
export function parseUserAgent(ua) {
  const rules = [
    ["edge", /\b(?:Edg|EdgA|EdgiOS)\/(\d+)/],
    ["other", /\b(?:OPR|Opera|SamsungBrowser|YaBrowser|Vivaldi)\/(\d+)/],
    ["firefox", /\b(?:Firefox|FxiOS)\/(\d+)/],
    ["chrome", /\b(?:Chrome|CriOS|Chromium)\/(\d+)/],
    ["safari", /\bVersion\/(\d+)[.\d]* (?:Mobile\/\S+ )?Safari\//],
  ];
  for (const [family, pattern] of rules) {
    const match = pattern.exec(ua);
    if (match) {
      const major = parseInt(match[1], 10);
      if (major >= 1 && major <= 999) return { family, major };
    }
  }
  // Another browser: the major version of the last product token that has one (the contract
  // needs a major from 1 to 999); null when the string has none at all.
  const tokens = [...ua.matchAll(/\b[A-Za-z][A-Za-z0-9_-]*\/(\d+)/g)].map((m) => parseInt(m[1], 10)).filter((n) => n >= 1 && n <= 999);
  return { family: "other", major: tokens.length ? tokens[tokens.length - 1] : null };
}
