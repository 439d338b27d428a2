// What the loader says about a file's text, as "LINE:COL: message" lines (empty when it loads).

import { parseConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";

export function problemsOf(text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(text, "t.yaml", env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
    throw e;
  }
  return [];
}
