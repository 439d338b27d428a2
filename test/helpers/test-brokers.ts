// The project's test brokers (scripts/*.sh), as the global setup and the test files both see them.
// Node's modules only: the global setup runs outside the test workers.

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/** Every test broker script, by path. */
export const TEST_BROKERS = ["cluster.sh", "rabbitmq4.sh", "rabbitmq43.sh", "tls-node.sh"].map((s) => fileURLToPath(new URL(`../../scripts/${s}`, import.meta.url)));

/** `status` exits 0 only for the script's own, running broker (not another checkout's). */
export function brokerRunning(script: string): boolean {
  return spawnSync(script, ["status"], { stdio: "ignore", timeout: 60_000 }).status === 0;
}
