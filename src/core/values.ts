// Pure: a value of an arguments table or a policy's definition, read as the type it should have.

/** A finite number, or undefined for anything else (a string "100" included: RabbitMQ reads no such limit). */
export function asNumber(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/** A string, or undefined for anything else. */
export function asString(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** Seconds in each unit of a stream's max-age, as RabbitMQ counts them (a month is 30 days). */
const AGE_UNITS: Readonly<Record<string, number>> = { Y: 365 * 86_400, M: 30 * 86_400, D: 86_400, h: 3_600, m: 60, s: 1 };

/** A stream's max-age ("7D", "1h") in seconds; undefined when it is none RabbitMQ reads. */
export function maxAgeSeconds(v: unknown): number | undefined {
  const m = typeof v === "string" ? /^([0-9]+)(Y|M|D|h|m|s)$/.exec(v) : null;
  return m ? Number(m[1]) * (AGE_UNITS[m[2] as string] as number) : undefined;
}
