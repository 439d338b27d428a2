// A local TCP port that counts the connections made to it and closes each at once: where a test
// proves that topo opened no connection (or exactly one), with no broker behind it.

import { createServer, type AddressInfo } from "node:net";

export interface CountingPort {
  port: number;
  /** How many connections it has taken so far. */
  connections(): number;
  close(): Promise<void>;
}

export async function countingPort(): Promise<CountingPort> {
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
