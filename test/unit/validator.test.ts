// The committed standalone validator must be generated from the current schema.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain ESM build script without type declarations
import { generate } from "../../scripts/build-validator.mjs";

describe("schema validator", () => {
  it("is up to date with schemas/topology.schema.json", () => {
    const current = readFileSync(join(import.meta.dirname, "../../schemas/topology.validate.cjs"), "utf8");
    expect(current === generate(), "run: node scripts/build-validator.mjs").toBe(true);
  });
});
