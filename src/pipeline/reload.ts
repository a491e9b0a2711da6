/**
 * Reloads the settings that can change while the proxy runs — policy, rate limits, redaction and
 * pinning — from the configuration file. A file that does not load or check keeps the old
 * settings in force and says why; every attempt is an `audit/reload` event, so the log shows which
 * policy judged which request.
 *
 * @module
 */
import type { AuditLog } from "../audit/chain.ts";
import { EventMethod } from "../audit/record.ts";
import { ConfigError, type Loaded } from "../config/load.ts";
import type { Logger } from "../log.ts";
import type { LiveSettings } from "./exchange.ts";
import {
  applySettings,
  buildSettings,
  type BuiltSettings,
  configDigest,
  type SettingsDeps,
} from "./settings.ts";

/** Keys under these take effect on reload; any other change waits for a restart. */
const RELOADABLE = ["policy.", "middleware.", "pinning."];

/** What started a reload. */
export type ReloadTrigger = "signal" | "file";

/** What a reload did. */
export type ReloadOutcome = "applied" | "unchanged" | "rejected";

/** What the reloader needs. */
export interface ReloaderDeps {
  /** Loads the configuration afresh: the file as it is now, the same environment and flags. */
  load: () => Loaded;
  loaded: Loaded;
  built: BuiltSettings;
  live: LiveSettings;
  settingsDeps: SettingsDeps;
  log: AuditLog;
  logger: Logger;
  /** Makes the event durable before the new settings judge anything. */
  sync: () => void;
  session: string | null;
}

/** Reloads settings on request. */
export class Reloader {
  #deps: ReloaderDeps;
  /** The configuration the proxy started with: what restart-only keys stay at. */
  #started: Loaded;
  #loaded: Loaded;
  #built: BuiltSettings;

  constructor(deps: ReloaderDeps) {
    this.#deps = deps;
    this.#started = deps.loaded;
    this.#loaded = deps.loaded;
    this.#built = deps.built;
  }

  /** Loads, checks and applies the configuration; records the attempt (file changes only when
   * they change something). */
  reload(trigger: ReloadTrigger): ReloadOutcome {
    const { logger, log } = this.#deps;
    let loaded: Loaded;
    let built: BuiltSettings;
    try {
      loaded = this.#deps.load();
      // Identities and paths stay as started: the log records the ids it started with, so the
      // guardrails must judge by them too, and pins stay beside the log they started beside.
      const running = this.#started.config;
      const config = { ...loaded.config, proxy: running.proxy, audit: running.audit };
      built = buildSettings(config, this.#deps.settingsDeps, this.#built);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      logger.error("configuration reload rejected; the previous settings stay in force", {
        error: e.message,
      });
      log.event(EventMethod.Reload, {
        trigger,
        outcome: "rejected",
        error: e.message,
        policy_digest: this.#built.policyDigest,
      }, this.#deps.session);
      this.#deps.sync();
      return "rejected";
    }
    const differ = (a: Loaded, b: Loaded): string[] =>
      Object.keys(b.effective).filter((k) =>
        configDigest({ v: a.effective[k] ?? null }) !== configDigest({ v: b.effective[k] ?? null })
      );
    const changed = differ(this.#loaded, loaded);
    if (changed.length === 0 && trigger === "file") return "unchanged";
    // Every key that differs from what the proxy started with and waits for a restart.
    const restart = differ(this.#started, loaded).filter((k) =>
      !RELOADABLE.some((p) => k.startsWith(p))
    );
    applySettings(this.#deps.live, built);
    this.#loaded = loaded;
    this.#built = built;
    for (const w of loaded.warnings) logger.warn(w);
    if (restart.length > 0) {
      logger.warn("these settings changed but take effect only on restart", {
        keys: restart.join(", "),
      });
    }
    const outcome: ReloadOutcome = changed.length === 0 ? "unchanged" : "applied";
    log.event(EventMethod.Reload, {
      trigger,
      outcome,
      changed,
      restart_needed: restart,
      config_digest: configDigest(loaded.effective),
      policy_digest: built.policyDigest,
    }, this.#deps.session);
    this.#deps.sync();
    logger.info("configuration reloaded", { trigger, outcome, changed: changed.length });
    return outcome;
  }
}
