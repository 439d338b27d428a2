// A proxy in front of the test broker's management API, for tests of what topo does with answers
// that are not the broker's (a proxy's page, a failure part-way, another vhost's listing).

import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { broker } from "./broker.js";

export interface ManagementProxy {
  /** The proxy's URL, with the test broker's credentials, for a cluster's `management:`. */
  url: string;
  port: number;
  close: () => void;
}

/**
 * Passes every request on to the test broker's management API, at the path `rewrite` gives (as it
 * came, by default), after `delayMs` (none by default), except where `answer` answers it itself
 * (it returns true).
 */
export async function managementProxy(
  o: { answer?: (req: IncomingMessage, res: ServerResponse) => boolean; rewrite?: (path: string) => string; delayMs?: (path: string) => number } = {},
): Promise<ManagementProxy> {
  const upstream = new URL(broker().mgmtBase);
  const proxy = createServer(async (req, res) => {
    if (o.answer?.(req, res)) return;
    // A slow answer (a large vhost's listing): the request goes on only after the delay.
    const wait = o.delayMs?.(req.url ?? "/") ?? 0;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const path = o.rewrite ? o.rewrite(req.url ?? "/") : req.url;
    const fwd = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path, headers: { ...req.headers, host: upstream.host } }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    fwd.on("error", () => res.destroy());
    req.pipe(fwd);
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  const port = (proxy.address() as { port: number }).port;
  return { url: `http://${broker().user}:${broker().password}@127.0.0.1:${port}`, port, close: () => proxy.close() };
}
