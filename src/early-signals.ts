// Signals that come while the command line is still loading (its modules take a few hundred
// milliseconds on a slow machine): kept, and answered once it can answer them, as an interrupted
// command with exit code 130 (as JSON under --json). Without a listener, Node ended the process
// with 143 and an empty stdout, which a deploy job cancelled early could not read. No import here:
// this module loads first, and must be there at once.

const met: NodeJS.Signals[] = [];

const early = (signal: NodeJS.Signals): void => {
  // A second one before the command line could answer the first: out at once, as later.
  if (met.length > 0) process.exit(130);
  met.push(signal);
};

/** Keep the signals that come from now on, until takeEarlySignals. */
export function watchEarlySignals(): void {
  process.on("SIGINT", early);
  process.on("SIGTERM", early);
}

/** The signal that came while the command line loaded, if one did; stops keeping them. */
export function takeEarlySignals(): NodeJS.Signals | undefined {
  process.off("SIGINT", early);
  process.off("SIGTERM", early);
  return met[0];
}
