// The project's test brokers (scripts/*.sh), as the global setup and the test files both see them.
// Node's modules only: the global setup runs outside the test workers.

import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Every test broker script, by path. */
export const TEST_BROKERS = ["cluster.sh", "rabbitmq4.sh", "rabbitmq43.sh", "tls-node.sh"].map((s) => fileURLToPath(new URL(`../../scripts/${s}`, import.meta.url)));

/** `status` exits 0 only for the script's own, running broker (not another checkout's). */
export function brokerRunning(script: string): boolean {
  return spawnSync(script, ["status"], { stdio: "ignore", timeout: 60_000 }).status === 0;
}

/**
 * A run's note that it started `script`'s broker, in the folder the global setup gives the run:
 * at its end the run stops those it noted, and only those. Judged by what ran at the start and the
 * end instead, a run stopped a broker another run (CI's, in another checkout with the same ports)
 * had started in between.
 */
export function noteStarted(folder: string, script: string): void {
  writeFileSync(join(folder, basename(script)), "");
}

/** Whether this run noted starting `script`'s broker (noteStarted). */
export function startedByRun(folder: string, script: string): boolean {
  return existsSync(join(folder, basename(script)));
}
