/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * A telemetry worker whose module fails to load, as one with a library missing would: for the
 * tests of what the main thread does then.
 *
 * @module
 */
throw new Error("this worker cannot load");
