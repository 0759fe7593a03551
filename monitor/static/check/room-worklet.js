// The room analysis on the audio thread (an AudioWorkletProcessor). It follows the CLI's
// analyser (agents/probes/room/analyser.py) definition by definition; what differs is said
// where it differs. Audio never leaves this processor: it keeps running sums, counts and a
// histogram of levels per segment, and posts only those summary numbers to the page.
//
// Segments are fixed ranges of 30 ms frames counted from the first sample: settling (0.51 s,
// not counted), the quiet part, the speech part. The page is told when each part begins, so it
// can show "stay quiet" and then the sentence to read.

const FAST_TAU_S = 0.125; // IEC 61672-1 "Fast" time weighting
const LEVEL_FRAME_S = 0.010; // the Fast level is sampled this often
const FRAME_S = 0.030; // voice decisions per 30 ms frame, like webrtcvad in the CLI
const VOICE_GATE_DB = 3.0; // a voice frame stands 3 dB above the lowest frame power of the last 1.5 s
const FLOOR_WINDOW_S = 1.5;
const MIN_VOICE_RUN = 3; // clicks fill one or two frames; a syllable at least three
const ACTIVITY_HANGOVER_S = 0.3; // speaking time: voice frames widened by 0.3 s each side
const CLIP_THRESHOLD = 0.999;
const HIST_MIN_DB = -200;
const HIST_MAX_DB = 20;
const HIST_STEP_DB = 0.05;
const POWER_FLOOR = 1e-20;
// The browser's stand-in for webrtcvad (docs/browser-check.md section 5): the share of a frame's
// energy (above 80 Hz) that lies in the voice band, 250-4000 Hz, must reach this. With these
// filters at 44.1/48 kHz steady noise holds: white 0.17-0.18, brown 0.30, pink 0.48-0.49;
// espeak-ng speech a median of 0.81 per 30 ms frame (three quarters of its frames within 20 dB
// of its loudest reach 0.6). Steady noise is also stopped by the level gate, as in the CLI.
const VOICE_BAND_SHARE = 0.6;

function powerDb(power) {
  return 10 * Math.log10(Math.max(power, POWER_FLOOR));
}

/** Transposed direct form II biquad, coefficients normalised (a0 = 1). */
class Biquad {
  constructor([b0, b1, b2], [, a1, a2]) {
    this.b0 = b0; this.b1 = b1; this.b2 = b2; this.a1 = a1; this.a2 = a2;
    this.z1 = 0; this.z2 = 0;
  }
  step(x) {
    const y = this.b0 * x + this.z1;
    this.z1 = this.b1 * x - this.a1 * y + this.z2;
    this.z2 = this.b2 * x - this.a2 * y;
    return y;
  }
}

/** RBJ cookbook Butterworth (Q = 1/sqrt 2) high- or low-pass. */
function butterworth(kind, fHz, fs) {
  const w = (2 * Math.PI * fHz) / fs;
  const cos = Math.cos(w);
  const alpha = Math.sin(w) / Math.SQRT2;
  const a0 = 1 + alpha;
  const b = kind === "low" ? [(1 - cos) / 2, 1 - cos, (1 - cos) / 2] : [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2];
  return new Biquad(b.map((v) => v / a0), [1, (-2 * cos) / a0, (1 - alpha) / a0]);
}

class Segment {
  constructor(bins) {
    this.frames = 0;
    this.samples = 0;
    this.weightedEnergy = 0;
    this.deviationEnergy = 0;
    this.clipped = 0;
    this.voiceFrames = 0;
    this.activeFrames = 0;
    this.activePower = 0;
    this.levelCounts = new Uint32Array(bins);
    this.levels = 0;
    this.maxPower = 0;
  }
}

class RoomProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions;
    const fs = sampleRate; // the context's rate, a global of the worklet scope
    this.fs = fs;
    this.aWeighting = o.sections.map((s) => new Biquad(s.b, s.a));
    this.aGain = o.gain;
    this.bandHigh = butterworth("high", 250, fs);
    this.bandLow = butterworth("low", Math.min(4000, 0.45 * fs), fs);
    this.totalHigh = butterworth("high", 80, fs);
    this.frameLen = Math.round(FRAME_S * fs);
    this.levelLen = Math.round(LEVEL_FRAME_S * fs);
    this.frameLen = this.levelLen * Math.round(this.frameLen / this.levelLen);
    this.alpha = 1 - Math.exp(-1 / (FAST_TAU_S * fs));
    this.fast = null;
    this.bins = Math.round((HIST_MAX_DB - HIST_MIN_DB) / HIST_STEP_DB);
    // Segment boundaries in frames: settle, quiet, speech (ends).
    this.ends = [
      Math.ceil(o.settleSeconds / FRAME_S),
    ];
    this.ends.push(this.ends[0] + Math.round(o.quietSeconds / FRAME_S));
    this.ends.push(this.ends[1] + Math.round(o.speechSeconds / FRAME_S));
    this.segments = this.ends.map(() => new Segment(this.bins));
    this.segmentIndex = 0;
    this.frameIndex = 0;
    // The current frame's running sums.
    this.fill = 0;
    this.fSum = 0; this.fSumSq = 0; this.fWeighted = 0; this.fBand = 0; this.fTotal = 0; this.fClipped = 0;
    this.levelFill = 0;
    this.fastSamples = [];
    this.recentPower = [];
    this.floorFrames = Math.max(1, Math.round(FLOOR_WINDOW_S / FRAME_S));
    this.hangover = Math.round(ACTIVITY_HANGOVER_S / FRAME_S);
    this.notActive = [];
    this.activeUntil = -1;
    this.run = [];
    this.runLength = 0;
    this.finished = false;
    this.port.postMessage({ type: "phase", phase: "settle", sampleRate: fs });
  }

  process(inputs) {
    if (this.finished) return false;
    const input = inputs[0];
    if (!input || input.length === 0) return true; // no channel yet (the source has not started)
    const channel = input[0];
    for (let i = 0; i < channel.length; i += 1) {
      let x = channel[i];
      if (!Number.isFinite(x)) x = 0;
      this.sample(x);
      if (this.finished) break;
    }
    return !this.finished;
  }

  sample(x) {
    let w = x;
    for (const section of this.aWeighting) w = section.step(w);
    w *= this.aGain;
    const w2 = w * w;
    if (this.fast === null) this.fast = w2; // the CLI starts from the first 10 ms's mean power
    this.fast += this.alpha * (w2 - this.fast);
    const total = this.totalHigh.step(x);
    const band = this.bandLow.step(this.bandHigh.step(x));
    this.fSum += x;
    this.fSumSq += x * x;
    this.fWeighted += w2;
    this.fBand += band * band;
    this.fTotal += total * total;
    if (Math.abs(x) >= CLIP_THRESHOLD) this.fClipped += 1;
    this.fill += 1;
    this.levelFill += 1;
    if (this.levelFill === this.levelLen) {
      this.fastSamples.push(this.fast);
      this.levelFill = 0;
    }
    if (this.fill === this.frameLen) this.endFrame();
  }

  endFrame() {
    const n = this.frameLen;
    const segment = this.segments[this.segmentIndex];
    const power = this.fWeighted / n;
    const deviation = Math.max(0, this.fSumSq - (this.fSum * this.fSum) / n);
    this.recentPower.push(power);
    if (this.recentPower.length > this.floorFrames) this.recentPower.shift();
    const floor = Math.min(...this.recentPower);
    const voiced = this.fTotal > 0 && this.fBand / this.fTotal >= VOICE_BAND_SHARE;
    const gated = power >= floor * 10 ** (VOICE_GATE_DB / 10);
    this.trackVoice(voiced && gated, power, this.segmentIndex);

    segment.frames += 1;
    segment.samples += n;
    segment.weightedEnergy += this.fWeighted;
    segment.deviationEnergy += deviation;
    segment.clipped += this.fClipped;
    for (const fast of this.fastSamples) {
      const db = 10 * Math.log10(Math.max(fast, POWER_FLOOR));
      const bin = Math.min(this.bins - 1, Math.max(0, Math.floor((db - HIST_MIN_DB) / HIST_STEP_DB)));
      segment.levelCounts[bin] += 1;
      segment.levels += 1;
      if (fast > segment.maxPower) segment.maxPower = fast;
    }
    this.fastSamples = [];
    this.fill = 0;
    this.fSum = 0; this.fSumSq = 0; this.fWeighted = 0; this.fBand = 0; this.fTotal = 0; this.fClipped = 0;
    this.frameIndex += 1;

    if (this.frameIndex === this.ends[this.segmentIndex]) {
      this.segmentIndex += 1;
      if (this.segmentIndex === 1) this.port.postMessage({ type: "phase", phase: "quiet" });
      else if (this.segmentIndex === 2) this.port.postMessage({ type: "phase", phase: "speech" });
      else this.finish();
    }
  }

  trackVoice(isVoice, power, segmentIndex) {
    let counts = false;
    if (!isVoice) {
      this.run = [];
      this.runLength = 0;
    } else {
      this.runLength += 1;
      if (this.runLength < MIN_VOICE_RUN) {
        this.run.push(segmentIndex);
      } else {
        for (const earlier of this.run) this.segments[earlier].voiceFrames += 1; // the run qualified
        this.run = [];
        this.segments[segmentIndex].voiceFrames += 1;
        counts = true;
      }
    }
    if (counts) {
      for (const [pendingPower, pendingSegment] of this.notActive) this.countActive(pendingPower, pendingSegment);
      this.notActive = [];
      this.activeUntil = this.frameIndex + this.hangover;
    }
    if (this.frameIndex <= this.activeUntil) {
      this.countActive(power, segmentIndex);
    } else {
      this.notActive.push([power, segmentIndex]);
      if (this.notActive.length > this.hangover) this.notActive.shift();
    }
  }

  countActive(power, segmentIndex) {
    const segment = this.segments[segmentIndex];
    segment.activeFrames += 1;
    segment.activePower += power;
  }

  percentile(segment, fraction) {
    if (!segment.levels) return null;
    const target = fraction * segment.levels;
    let cumulative = 0;
    for (let i = 0; i < segment.levelCounts.length; i += 1) {
      cumulative += segment.levelCounts[i];
      if (cumulative >= target) return HIST_MIN_DB + (i + 0.5) * HIST_STEP_DB;
    }
    return HIST_MAX_DB;
  }

  summary(segment) {
    if (!segment.samples) return null;
    const meanPower = segment.weightedEnergy / segment.samples;
    return {
      duration_s: segment.samples / this.fs,
      laeq_db: powerDb(meanPower),
      l90_db: this.percentile(segment, 0.10),
      l10_db: this.percentile(segment, 0.90),
      lmax_db: powerDb(segment.maxPower),
      mean_power: meanPower,
      voice_ratio: segment.voiceFrames / segment.frames,
      voice_s: segment.voiceFrames * FRAME_S,
      active_mean_power: segment.activeFrames ? segment.activePower / segment.activeFrames : null,
      deviation_rms_db: powerDb(segment.deviationEnergy / segment.samples),
      clipped: segment.clipped,
      samples: segment.samples,
    };
  }

  finish() {
    this.finished = true;
    // Only numbers: two summaries, nothing of the audio itself.
    this.port.postMessage({
      type: "done",
      sampleRate: this.fs,
      quiet: this.summary(this.segments[1]),
      speech: this.summary(this.segments[2]),
    });
  }
}

registerProcessor("sessionready-room", RoomProcessor);
