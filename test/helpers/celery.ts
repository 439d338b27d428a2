// Real Celery workers for the export tests: Debian's python3-celery under a clean environment,
// started, waited for and stopped the same way by every test file that runs them.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import type { TestContext } from "vitest";
import { WORKER_OPTIONS } from "../../src/export/celery.js";
import { inCI } from "./broker.js";

/** Debian's python3-celery installs into /usr/bin/python3's dist-packages; the python3 first on PATH may be another (a pyenv one). */
export const PYTHON = "/usr/bin/python3";

/** Can PYTHON import these modules? */
function imports(modules: string): boolean {
  try {
    execFileSync(PYTHON, ["-c", `import ${modules}`], { timeout: 30_000, stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Can Debian's python3-celery be imported? .ci/run installs it; without it Celery tests skip, or fail under CI. */
export function hasCelery(): boolean {
  return imports("celery, kombu");
}

const NO_PY_AMQP = `${PYTHON} cannot import amqp (py-amqp); install Debian's python3-amqp, or python3-celery as .ci/run does`;

/** Whether py-amqp, Celery's AMQP client (Debian's python3-amqp, which python3-celery brings), imports: asked once, by the first test that needs it. */
let pyAmqp: boolean | undefined;

/**
 * Skip a test that needs py-amqp, saying why, when PYTHON cannot import it; under CI=true fail
 * instead, as the Celery tests do: CI installs it, so its absence there is a broken set-up.
 */
export function needPyAmqp(ctx: TestContext): void {
  if ((pyAmqp ??= imports("amqp"))) return;
  if (inCI()) throw new Error(`${NO_PY_AMQP} (under CI=true this fails instead of skipping)`);
  ctx.skip(NO_PY_AMQP);
}

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
