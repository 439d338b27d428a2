// Pure: a value of an arguments table or a policy's definition, read as the type it should have.

/** A finite number, or undefined for anything else (a string "100" included: RabbitMQ reads no such limit). */
export function asNumber(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/** A string, or undefined for anything else. */
export function asString(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}
