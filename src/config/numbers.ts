// Pure: numbers as written in the file. Every number topo reads (the format's version, a queue's
// x-arguments) is a whole number, and must mean one number to every reader of the file: YAML 1.2,
// which topo parses, reads 010 as 10 where YAML 1.1 readers (PyYAML, which Celery users reach
// for) read the octal 8; 1e3 is 1000 to one and the text "1e3" to the other; 1_000 the reverse;
// YAML's JSON schema reads 0x10, 0o10 and +5 as text. And a whole number above 2^53-1 has no exact
// double: JavaScript, and so JSON.parse and the YAML parser, round it (9007199254740993 reads as
// 9007199254740992), and topo would declare another number than the file says. RabbitMQ itself
// takes larger ones (measured on 3.10.8: 2^53-1 is declared and read back exactly); topo cannot
// carry them exactly through amqplib and the management API's JSON, so it refuses them.
//
// So a number is written in plain decimal digits, with a minus sign at most; anything else is
// refused at its place with the decimal to write.

import { MAX_EXACT } from "./arguments.js";

/** A whole number in plain decimal digits, with a minus sign at most: the one form every reader takes alike. */
export const PLAIN = /^-?(?:0|[1-9][0-9]*)$/;
const PYYAML = "YAML 1.1 readers (PyYAML)";
const TOPO = "YAML 1.2 (topo)";

/**
 * What is wrong with a number as written (`source`) that YAML read as `value`, at a place whose
 * schema takes `types`; undefined when it is plain decimal and exact. `secret`: the place holds a
 * password, whose text is never shown.
 */
export function numberProblem(source: string, value: number, types: ReadonlySet<string>, secret: boolean): string | undefined {
  const numeric = types.has("integer") || types.has("number");
  if (!numeric) {
    // Only text is taken here (a name, a password): the number read is not what was written.
    if (!types.has("string") || String(value) === source) return undefined;
    if (secret) return `YAML reads this value as a number, not as the text written; put it in quotes to mean the text`;
    return `YAML reads ${source} as the number ${shown(value)}, not as the text written; put it in quotes (${JSON.stringify(source)}) to mean the text`;
  }
  // A fraction, .inf or .nan is no whole number at all: the schema says so. 1e400 is written
  // as a number, and read as infinity.
  const overflow = !Number.isFinite(value) && /^[-+]?[0-9]/.test(source);
  if (!Number.isInteger(value) && !overflow) return undefined;
  if (!Number.isSafeInteger(value)) {
    const exact = overflow || (PLAIN.test(source) && BigInt(value) === BigInt(source));
    const read = exact || !PLAIN.test(source) ? "larger numbers are rounded" : `topo reads it as ${BigInt(value)}, as every JavaScript or JSON reader does, and would declare that`;
    return `${source} is beyond ${MAX_EXACT} (2^53-1), the largest whole number topo carries exactly: ${read}; write at most ${MAX_EXACT}`;
  }
  if (PLAIN.test(source)) return undefined;
  const decimal = shown(value);
  const digits = source.replace(/^[-+]/, "");
  if (/^0[0-9]+$/.test(digits)) {
    const octal = /^[0-7]+$/.test(digits) ? `the octal ${parseInt(source, 8)}` : "text";
    // Read as the octal: the file's %YAML 1.1 directive made the parser read it as PyYAML does.
    if (/^[0-7]+$/.test(digits) && parseInt(source, 8) === value && parseInt(source, 10) !== value) {
      return `${source} is the octal ${decimal} to YAML 1.1 readers (as this file's %YAML 1.1 directive makes topo read it), but ${parseInt(source, 10)} to YAML 1.2 ones; write ${decimal} without the leading zero`;
    }
    const alt = /^[0-7]+$/.test(digits) && parseInt(source, 8) !== value ? ` (or ${parseInt(source, 8)})` : "";
    return `${TOPO} reads ${source} as ${decimal}, but ${PYYAML} read it as ${octal}; write ${decimal}${alt} without the leading zero`;
  }
  if (/^[-+]?0o/i.test(source)) return `${source} is an octal number (${decimal}), which ${PYYAML} read as text; write it in decimal: ${decimal}`;
  if (/^[-+]?0x/i.test(source)) return `${source} is a hexadecimal number (${decimal}), which YAML's JSON schema reads as text; write it in decimal: ${decimal}`;
  if (/^\+[0-9]+$/.test(source)) return `YAML's JSON schema reads ${source} as text; write ${decimal} without the +`;
  // Under a %YAML 1.1 directive YAML reads 1_000, 0b101 and 1:30 as numbers, which YAML 1.2 reads as text.
  if (yaml11Integer(source) !== undefined) return `${source} is ${decimal} to YAML 1.1 readers, and text to YAML 1.2 ones; write it in decimal: ${decimal}`;
  // PyYAML's float needs a "." and a signed exponent (1.0e+3): 1e3 and 1.5e3 are text to it.
  if (/[eE]/.test(source) && (!source.includes(".") || /[eE][0-9]/.test(source))) return `${TOPO} reads ${source} as ${decimal}, but ${PYYAML} read it as text; write it in decimal: ${decimal}`;
  return `${source} is a fraction to ${PYYAML}, not a whole number; write ${decimal}`;
}

/**
 * What is wrong with a plain scalar YAML 1.2 read as text where a whole number is wanted, when
 * YAML 1.1 reads it as a number: 1_000, 0b101, 1:30. Undefined otherwise (the schema then says
 * it is not an integer).
 */
export function numberTextProblem(source: string, types: ReadonlySet<string>): string | undefined {
  if (types.has("string") || !(types.has("integer") || types.has("number"))) return undefined;
  const v = yaml11Integer(source);
  if (v === undefined) return undefined;
  return `${TOPO} reads ${source} as text, but ${PYYAML} read it as ${v}; write it in decimal: ${v}`;
}

/** Cheaply: whether text YAML 1.2 read may be a number to YAML 1.1 (numberTextProblem tells). */
export function maybeYaml11Number(text: string): boolean {
  return /^[-+]?[0-9]/.test(text);
}

/** What YAML 1.1 reads a plain scalar as, for the integer forms YAML 1.2 reads as text. */
function yaml11Integer(source: string): string | undefined {
  const sign = source.startsWith("-") ? -1n : 1n;
  const body = source.replace(/^[-+]/, "");
  if (/^[0-9][0-9_]*$/.test(body) && body.includes("_") && !body.startsWith("0")) return String(sign * BigInt(body.replace(/_/g, "")));
  if (/^0b[01_]+$/.test(body)) return String(sign * BigInt(`0b${body.slice(2).replace(/_/g, "")}`));
  if (/^[1-9][0-9_]*(?::[0-5]?[0-9])+$/.test(body)) {
    return String(sign * body.split(":").reduce((n, part) => n * 60n + BigInt(part.replace(/_/g, "")), 0n));
  }
  return undefined;
}

function shown(value: number): string {
  return Number.isSafeInteger(value) ? String(value) : BigInt(value).toString();
}
