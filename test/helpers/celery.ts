// Real Celery workers for the export tests: Debian's python3-celery under a clean environment,
// started, waited for and stopped the same way by every test file that runs them.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import type { TestContext } from "vitest";
import { WORKER_OPTIONS } from "../../src/export/celery.js";
import { inCI } from "./broker.js";

/** Debian's python3-celery installs into /usr/bin/python3's dist-packages; the python3 first on PATH may be another (a pyenv one). */
export const PYTHON = "/usr/bin/python3";

/**
 * What a test needs of PYTHON: modules it must import. Asked once, when first wanted, so a run that
 * leaves those tests out never starts Python. Where they are missing, the tests skip with the reason
 * in their title or skip note, except under CI=true (`inCI`), where a missing module is a broken
 * set-up (.ci/run installs python3-celery) and the tests fail instead. One rule for every test
 * file: they had four forms of it, two of which failed under CI=false.
 */
export class PythonNeed {
  #probe: { version?: string; missing?: string } | undefined;

  /**
   * `modules`: what `import` names; `what`: how a message names them; `pkg`: the Debian package
   * that brings them; `version`: a Python expression whose value the probe prints, for a title.
   */
  constructor(
    private readonly modules: string,
    private readonly what: string,
    private readonly pkg: string,
    private readonly version?: string,
  ) {}

  #probed(): { version?: string; missing?: string } {
    if (this.#probe) return this.#probe;
    const code = `import ${this.modules}${this.version ? `; print(${this.version})` : ""}`;
    try {
      const out = execFileSync(PYTHON, ["-c", code], { encoding: "utf8", timeout: 30_000, stdio: ["ignore", "pipe", "ignore"] }).trim();
      this.#probe = this.version ? { version: out } : {};
    } catch {
      const also = this.pkg === "python3-celery" ? "" : ", or python3-celery (which .ci/run installs, and which brings it)";
      this.#probe = { missing: `${PYTHON} cannot import ${this.what}; install Debian's ${this.pkg}: apt-get install -y --no-install-recommends ${this.pkg}${also}` };
    }
    return this.#probe;
  }

  /** Why the tests cannot run here; undefined where PYTHON imports the modules. */
  get missing(): string | undefined {
    return this.#probed().missing;
  }

  /** What the version expression printed (undefined when missing). */
  get found(): string | undefined {
    return this.#probed().version;
  }

  /** For `describe.skipIf` / `it.skipIf`: missing, and not under CI. */
  get skip(): boolean {
    return this.missing !== undefined && !inCI();
  }

  /** For a title: " (skipped: why)" where the tests skip, "" otherwise. */
  get titleNote(): string {
    return this.skip ? ` (skipped: ${this.missing})` : "";
  }

  /** In a beforeAll or a test that was not skipped: fail where the modules are missing (under CI). */
  require(): void {
    if (this.missing) throw new Error(`${this.missing} (under CI this fails instead of skipping: .ci/run installs it)`);
  }

  /** In a test: skip it, saying why, where the modules are missing; under CI fail instead. */
  skipOrFail(ctx: TestContext): void {
    if (!this.missing) return;
    if (inCI()) this.require();
    ctx.skip(this.missing);
  }
}

/** Debian's python3-celery: Celery and kombu, for the tests that run real workers. */
export const CELERY = new PythonNeed("celery, kombu", "celery", "python3-celery", "celery.__version__");

/** py-amqp, Celery's AMQP client (Debian's python3-amqp, which python3-celery brings). */
export const PY_AMQP = new PythonNeed("amqp", "amqp (py-amqp)", "python3-amqp");

/** A clean environment for Python: no PYTHONHOME or pyenv settings leak in from the test runner. */
export function pyEnv(dir: string, extra: Record<string, string>): Record<string, string> {
  return { PATH: "/usr/bin:/bin", HOME: dir, LANG: "C.UTF-8", PYTHONPATH: dir, PYTHONDONTWRITEBYTECODE: "1", PYTHONUNBUFFERED: "1", ...extra };
}

export interface Worker {
  proc: ChildProcess;
  log: () => string;
}

/**
 * `celery -A APP worker -Q QUEUES` with the options the exported module's header asks for
 * (WORKER_OPTIONS: no mingle, gossip or heartbeat), solo pool, its output collected.
 */
export function spawnWorker(dir: string, app: string, queues: string[], env: Record<string, string>): Worker {
  const argv = ["-m", "celery", "-A", app, "worker", "-Q", queues.join(","), ...WORKER_OPTIONS, "-P", "solo", "-l", "info", "-n", `${app}@%h`];
  const proc = spawn(PYTHON, argv, {
    cwd: dir,
    env: pyEnv(dir, env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  proc.stdout!.on("data", (b: Buffer) => (log += b.toString()));
  proc.stderr!.on("data", (b: Buffer) => (log += b.toString()));
  return { proc, log: () => log };
}

/** Wait (bounded) until `ok`, or fail with the log. */
export async function until(what: string, ok: () => boolean, timeoutMs: number, log: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; log:\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Warm shutdown, bounded; SIGKILL if it hangs. */
export function stopWorker(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    proc.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    proc.kill("SIGTERM");
  });
}
