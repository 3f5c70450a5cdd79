export interface ProgressReporter {
  /** Records progress in percent; published at most every `minIntervalMs`, never going backwards. */
  report: (percent: number) => void;
  /** Drops anything not yet published and waits for the publish in flight. */
  stop: () => Promise<void>;
}

/**
 * Throttles a handler's progress calls (ffmpeg reports dozens a second) to a few events a
 * second. The latest value waiting when the interval ends is published then, so the last
 * report before a long quiet stretch is not lost.
 */
export function createProgressReporter(publish: (percent: number) => Promise<unknown>, minIntervalMs = 250): ProgressReporter {
  let sent = -1;
  let sentAt = -Infinity;
  let waiting: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<unknown> = Promise.resolve();
  let stopped = false;

  const send = () => {
    timer = undefined;
    if (waiting === undefined || stopped) return;
    sent = waiting;
    sentAt = Date.now();
    waiting = undefined;
    const value = sent;
    inFlight = inFlight.then(() => publish(value)).catch(() => {});
  };

  return {
    report(percent) {
      if (stopped || !Number.isFinite(percent)) return;
      const value = Math.round(Math.min(100, Math.max(0, percent)) * 10) / 10;
      if (value <= sent || (waiting !== undefined && value <= waiting)) return;
      waiting = value;
      if (timer) return;
      const wait = sentAt + minIntervalMs - Date.now();
      if (wait <= 0) send();
      else timer = setTimeout(send, wait);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await inFlight;
    },
  };
}
