#!/usr/bin/env node
// The command line's entry: it only keeps the signals that come while the rest loads
// (early-signals.ts), then loads the command line itself (command-line.ts).

import { watchEarlySignals } from "./early-signals.js";

watchEarlySignals();
await import("./command-line.js");
