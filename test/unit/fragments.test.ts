import { describe, expect, it } from "vitest";
import { fragments } from "../helpers/fragments.js";

describe("the pieces of a secret a test searches output for", () => {
  it("holds every piece of 4 or more characters but short runs of digits alone", () => {
    const pieces = fragments("%4050%2");
    expect(pieces).not.toContain("4050"); // "took 4050 ms" is not a leak
    expect(pieces).toEqual(expect.arrayContaining(["%405", "4050%", "%4050%2", "050%"]));
    expect(fragments("x1234567")).toEqual(expect.arrayContaining(["123456", "1234567"]));
    expect(fragments("x1234567")).not.toContain("12345");
    expect(fragments("Wö/rd", 3)).toEqual(["Wö/", "Wö/r", "Wö/rd", "ö/r", "ö/rd", "/rd"]);
  });
});
