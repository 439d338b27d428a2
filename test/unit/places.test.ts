// Where a path is in the YAML document. Lists and maps are indexed on the first question (a
// search per problem of a list of 10,000 services, or of 10,000 users, took a minute and a half),
// and the answers must stay those of a search from the start, also once the document changes.

import { parseDocument, Scalar, type YAMLMap, type YAMLSeq } from "yaml";
import { describe, expect, it } from "vitest";
import { nodeAt, yamlPath } from "../../src/config/places.js";

const parse = (text: string) => parseDocument(text, { merge: true, uniqueKeys: false });
const valueAt = (doc: ReturnType<typeof parse>, path: (string | number)[]) => (nodeAt(doc, path) as Scalar | undefined)?.value;

describe("nodeAt and yamlPath, indexed", () => {
  it("finds the later of a key given twice, the one YAML reads", () => {
    const doc = parse("users:\n  a: 1\n  b: 2\n  a: 3\n");
    expect(valueAt(doc, ["users", "a"])).toBe(3);
    expect(valueAt(doc, ["users", "b"])).toBe(2);
    expect(valueAt(doc, ["users", "c"])).toBeUndefined();
  });

  it("finds keys through merge keys, own keys first", () => {
    const doc = parse("base: &b {a: 1, c: 5}\nx:\n  <<: *b\n  a: 2\n");
    expect(valueAt(doc, ["x", "a"])).toBe(2);
    expect(valueAt(doc, ["x", "c"])).toBe(5);
  });

  it("follows the document when a pair is removed, added, replaced or its key renamed", () => {
    const doc = parse("users:\n  a: 1\n  b: 2\n  c: 3\n");
    const users = doc.get("users") as YAMLMap;
    expect(valueAt(doc, ["users", "b"])).toBe(2);
    users.items.splice(1, 1);
    expect(valueAt(doc, ["users", "b"])).toBeUndefined();
    expect(valueAt(doc, ["users", "c"])).toBe(3);
    users.items.unshift(doc.createPair("c", 9) as never);
    // Now given twice: the later one is read.
    expect(valueAt(doc, ["users", "c"])).toBe(3);
    users.items[0] = doc.createPair("d", 4) as never;
    expect(valueAt(doc, ["users", "d"])).toBe(4);
    expect(valueAt(doc, ["users", "c"])).toBe(3);
    ((users.items[1] as { key: Scalar }).key as Scalar).value = "e";
    expect(valueAt(doc, ["users", "e"])).toBe(1);
    expect(valueAt(doc, ["users", "a"])).toBeUndefined();
  });

  it("gives each list item its index, also once the list changes", () => {
    const doc = parse("services:\n  - a\n  - b\n  - c\n");
    const services = doc.get("services") as YAMLSeq;
    const [a, b, c] = services.items;
    expect(yamlPath([doc, doc.contents, (doc.contents as YAMLMap).items[0], services], c)).toEqual(["services", 2]);
    services.items.splice(0, 1);
    expect(yamlPath([doc, doc.contents, (doc.contents as YAMLMap).items[0], services], c)).toEqual(["services", 1]);
    expect(yamlPath([doc, doc.contents, (doc.contents as YAMLMap).items[0], services], b)).toEqual(["services", 0]);
    expect(yamlPath([doc, doc.contents, (doc.contents as YAMLMap).items[0], services], a)).toEqual(["services", -1]);
  });
});
