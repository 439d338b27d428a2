// Random mutations of the example file, reproducible from a seed. The seed is fixed unless
// TOPO_FUZZ_SEED asks for another (TOPO_FUZZ_SEED=random draws one), and every failure names it.

import { readFileSync } from "node:fs";
import { join } from "node:path";
// @ts-expect-error: a plain ESM module shared with scripts/fuzz-broker.mjs, without type declarations
import { prng } from "../../scripts/prng.mjs";

const ROOT = join(import.meta.dirname, "../..");
const EXAMPLE = readFileSync(join(ROOT, "topology.yaml"), "utf8");
const FIXED_SEED = 20261130;
const asked = process.env.TOPO_FUZZ_SEED;
export const SEED = asked === "random" ? Date.now() % 1_000_000 : asked ? Number(asked) : FIXED_SEED;
/** How many mutated files a seed gives (the unit test reads the first ones, the CLI test every 20th). */
export const ROUNDS = Math.max(400, Number(process.env.TOPO_FUZZ_ROUNDS ?? 400));


const TOKENS = [":", "-", "[", "]", "{", "}", "&a", "*a", "!!binary", "!!str", "${", "${X}", "\t", "  ", "#", "'", '"', "|", ">", "?", ",", "\u00e9", "\ud83d\ude00", "\u0000", "null", "~", "1e999", "-1", "true", "0x1F", "mp_x", "MPX", "amqp://", "%2F"];
const SCALARS = ["", "0", "-1", "3.5", "true", "null", "[]", "{}", "mp", "x".repeat(300), "amqp://u:p@h/v", "${TOPO_FUZZ_UNSET}", "quorum", "stream"];

function mutate(text: string, rnd: () => number): string {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  let lines = text.split("\n");
  const n = 1 + Math.floor(rnd() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(rnd() * lines.length);
    const line = lines[at] ?? "";
    switch (Math.floor(rnd() * 9)) {
      case 0:
        lines.splice(at, 1);
        break;
      case 1:
        lines.splice(at, 0, line);
        break;
      case 2: {
        const other = Math.floor(rnd() * lines.length);
        [lines[at], lines[other]] = [lines[other] ?? "", line];
        break;
      }
      case 3: {
        const c = Math.floor(rnd() * (line.length + 1));
        lines[at] = line.slice(0, c) + String.fromCharCode(32 + Math.floor(rnd() * 95)) + line.slice(c + 1);
        break;
      }
      case 4: {
        const c = Math.floor(rnd() * (line.length + 1));
        lines[at] = line.slice(0, c) + pick(TOKENS) + line.slice(c);
        break;
      }
      case 5:
        lines[at] = rnd() < 0.5 ? ` ${line}` : line.replace(/^ /, "");
        break;
      case 6:
        lines[at] = line.replace(/:\s*(\S.*)$/, () => `: ${pick(SCALARS)}`);
        break;
      case 7:
        lines = lines.slice(0, at);
        break;
      default:
        lines[at] = line.replace(/[a-z]+/, (w) => w.toUpperCase());
    }
  }
  return lines.join("\n");
}

/** The mutated files of this seed, the same every run. */
export function cases(): string[] {
  const rnd: () => number = prng(SEED);
  return Array.from({ length: ROUNDS }, () => mutate(EXAMPLE, rnd));
}

