// The refusal a guard throws: what apply would say, and nothing is written.

import { UnsafePlanError } from "../../src/errors.js";

/** The UnsafePlanError `f` throws; any other error is thrown on, and nothing thrown fails the test. */
export function refusal(f: () => void): UnsafePlanError {
  try {
    f();
  } catch (e) {
    if (e instanceof UnsafePlanError) return e;
    throw e;
  }
  throw new Error("nothing was refused");
}
