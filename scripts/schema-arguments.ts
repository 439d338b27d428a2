// Write definitions.arguments of schemas/topology.schema.json from src/config/arguments.ts, the one
// table of queue arguments, then the standalone validator. The rest of the schema is left as
// written. test/unit/arguments.test.ts fails while the two differ.
// Usage: npx vite-node scripts/schema-arguments.ts -- --write

import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { argumentsSchema } from "../src/config/arguments.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const SCHEMA_PATH = join(root, "schemas/topology.schema.json");
const VALIDATOR_PATH = join(root, "schemas/topology.validate.cjs");

/** One line per argument, in the schema's own layout. */
function inline(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(inline).join(", ")}]`;
  if (v && typeof v === "object") return `{ ${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${inline(x)}`).join(", ")} }`;
  return JSON.stringify(v);
}

function block(): string {
  const { properties, ...head } = argumentsSchema() as { properties: Record<string, unknown> };
  const lines = Object.entries(head).map(([k, v]) => `      ${JSON.stringify(k)}: ${JSON.stringify(v)},`);
  const props = Object.entries(properties).map(([k, v]) => `        ${JSON.stringify(k)}: ${inline(v)}`);
  return `"arguments": {\n${lines.join("\n")}\n      "properties": {\n${props.join(",\n")}\n      }\n    }`;
}

/** The schema text with its definitions.arguments replaced by the generated one. */
export function withArguments(text: string): string {
  const start = text.indexOf('\n    "arguments": {', text.indexOf('"definitions"'));
  if (start < 0) throw new Error("schemas/topology.schema.json has no definitions.arguments");
  const open = text.indexOf("{", start);
  let depth = 0;
  let inString = false;
  let end = -1;
  for (let i = open; i < text.length && end < 0; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) end = i + 1;
  }
  const out = `${text.slice(0, start + 5)}${block()}${text.slice(end)}`;
  JSON.parse(out); // still JSON
  return out;
}

// vite-node does not pass the script as argv[1]; the tests import this file without --write.
if (process.argv.includes("--write")) {
  writeFileSync(SCHEMA_PATH, withArguments(readFileSync(SCHEMA_PATH, "utf8")));
  // @ts-expect-error: a plain ESM build script without type declarations
  const { generate } = (await import("./build-validator.mjs")) as { generate: () => string };
  writeFileSync(VALIDATOR_PATH, generate());
  console.log("wrote schemas/topology.schema.json (definitions.arguments) and schemas/topology.validate.cjs");
}
