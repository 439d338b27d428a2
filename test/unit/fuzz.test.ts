// Random mutations of the example file: the loader never crashes. Each mutation either loads or
// is refused with problems that all have a place and a message. The seed is fixed (see
// test/helpers/fuzz.ts); a failure prints it, and TOPO_FUZZ_SEED=<seed> replays it.

import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";
import { cases, SEED } from "../helpers/fuzz.js";

/** Enough rounds to meet every kind of mutation, few enough to keep the unit suite quick. */
const ROUNDS = Number(process.env.TOPO_FUZZ_ROUNDS ?? 150);

describe(`fuzz (seed ${SEED}; replay with TOPO_FUZZ_SEED=${SEED})`, () => {
  it("the loader returns or refuses with placed problems, never crashes", () => {
    let refused = 0;
    for (const [i, text] of cases().slice(0, ROUNDS).entries()) {
      try {
        parseConfig(text, "fuzz.yaml", { RABBITMQ_PASSWORD: "pw" });
      } catch (e) {
        if (!(e instanceof ConfigError)) throw new Error(`round ${i} (seed ${SEED}) crashed: ${(e as Error).stack}\n--- input ---\n${text}`);
        refused++;
        expect(e.problems.length, `round ${i}`).toBeGreaterThan(0);
        for (const p of e.problems) {
          expect(p.line, `round ${i}: ${p.message}`).toBeGreaterThanOrEqual(1);
          expect(p.col, `round ${i}: ${p.message}`).toBeGreaterThanOrEqual(1);
          expect(p.message.trim().length, `round ${i}`).toBeGreaterThan(0);
        }
      }
    }
    // The mutations must actually break files, or this test proves nothing.
    expect(refused).toBeGreaterThan(ROUNDS / 4);
  });

});
