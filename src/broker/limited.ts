// Work on many items a few at a time: apply's HTTP writes and replaces (execute.ts), and the live
// counts of queues (read.ts).

/** `fn` on every item, `limit` at a time; after a failure nothing new starts, those under way finish, and the first failure is thrown. */
export async function runLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure;
}
