/**
 * The Deno runtime's own metrics, served for `metrics.include_go_metrics` (the Go tool's runtime
 * collector has no meaning here): V8 heap used and reserved, external memory, how late the event
 * loop runs timers, and the runtime's version.
 *
 * Event-loop lag is measured by a probe: an unref'd interval timer that notes how much later than
 * due it fired. Anything that holds the loop (a long synchronous write, a CPU-bound parse) delays
 * it. `deno_event_loop_lag_seconds` is the last probe's delay, `deno_event_loop_delay_seconds`
 * their distribution.
 *
 * @module
 */
import type { Histogram, Meter, Observable } from "@opentelemetry/api";
import { RUNTIME } from "./metric_names.ts";

/** How often the probe fires, in ms. */
export const PROBE_INTERVAL_MS = 500;

/** What the runtime metrics read; replaced in tests. */
export interface RuntimeSource {
  memoryUsage(): { heapUsed: number; heapTotal: number; external: number };
  version: { deno: string; v8: string };
  /** Monotonic milliseconds. */
  now(): number;
}

/** The running Deno. */
export const THIS_RUNTIME: RuntimeSource = {
  memoryUsage: () => Deno.memoryUsage(),
  version: Deno.version,
  now: () => performance.now(),
};

/** Registers the `deno_*` metrics on `meter` and runs the event-loop probe until closed. */
export class RuntimeMetrics implements Disposable {
  #src: RuntimeSource;
  #delay: Histogram;
  #last = 0;
  #lag = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(meter: Meter, source: RuntimeSource = THIS_RUNTIME, intervalMs = PROBE_INTERVAL_MS) {
    this.#src = source;
    const gauge = (s: { name: string; help: string }): Observable =>
      meter.createObservableGauge(s.name, { description: s.help });
    const heapUsed = gauge(RUNTIME.heapUsed);
    const heapTotal = gauge(RUNTIME.heapTotal);
    const external = gauge(RUNTIME.external);
    const lag = gauge(RUNTIME.loopLag);
    const info = gauge(RUNTIME.info);
    meter.addBatchObservableCallback((result) => {
      const m = this.#src.memoryUsage();
      result.observe(heapUsed, m.heapUsed);
      result.observe(heapTotal, m.heapTotal);
      result.observe(external, m.external);
      result.observe(lag, this.#lag);
      result.observe(info, 1, { version: this.#src.version.deno, v8: this.#src.version.v8 });
    }, [heapUsed, heapTotal, external, lag, info]);
    this.#delay = meter.createHistogram(RUNTIME.loopDelay.name, {
      description: RUNTIME.loopDelay.help,
      advice: { explicitBucketBoundaries: [...(RUNTIME.loopDelay.buckets ?? [])] },
    });
    this.#last = source.now();
    if (intervalMs > 0) {
      const timer = setInterval(() => this.probe(intervalMs), intervalMs);
      // The probe must never keep the process alive.
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
  }

  /** One probe tick: records how late it came after the previous one. Public for tests. */
  probe(intervalMs: number): void {
    const now = this.#src.now();
    const lateMs = Math.max(0, now - this.#last - intervalMs);
    this.#last = now;
    this.#lag = lateMs / 1000;
    this.#delay.record(this.#lag);
  }

  /** Stops the probe. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
