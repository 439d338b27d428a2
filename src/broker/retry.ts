// Bounded exponential backoff with jitter, shared by the HTTP and AMQP edges.

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Delay before attempt n+1: 200 ms, 400 ms, 800 ms, ... capped at 5 s, with ±20% jitter. */
export function backoff(attempt: number): number {
  const base = Math.min(5000, 200 * 2 ** (attempt - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}
