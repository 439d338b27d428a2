// Pure: which moved messages topo's AMQP client would write back changed (broker/replace.ts).

import { describe, expect, it } from "vitest";
import { identity, unfaithful } from "../../src/broker/replace.js";

const m = (headers?: Record<string, unknown>) => ({ properties: { headers } });

describe("a message topo cannot move unchanged", () => {
  it("holds an integer beyond 2^53 or bytes read as text with U+FFFD, at any depth", () => {
    expect(unfaithful(m({ eventid: 1234567890123456768 }))).toMatch(/its header eventid holds a whole number beyond 2\^53 \(1234567890123456800\): sent as a 64-bit integer, topo's AMQP client read it rounded, and it cannot tell one from a double/);
    expect(unfaithful(m({ sig: "\u07ad\ufffd\ufffd" }))).toMatch(/its header sig holds bytes that are not UTF-8 text/);
    expect(unfaithful(m({ a: [{ b: -9007199254740993 }] }))).toMatch(/its header a\[0\]\.b holds a whole number beyond 2\^53/);
  });

  // A message_id of Latin-1 bytes came back with U+FFFD and was moved changed: the properties
  // that are short strings, and a table's keys, are read as UTF-8 as a header's text is.
  it("holds such bytes in a property that is text (message_id, correlation_id, ...) or in a header's key", () => {
    expect(unfaithful({ properties: { messageId: "caf\ufffd-1" } })).toBe("its message_id holds bytes that are not UTF-8 text, which topo's AMQP client reads as text and would write back changed");
    for (const [p, name] of [["correlationId", "correlation_id"], ["type", "type"], ["appId", "app_id"], ["replyTo", "reply_to"], ["contentType", "content_type"], ["contentEncoding", "content_encoding"], ["userId", "user_id"], ["expiration", "expiration"], ["clusterId", "cluster_id"]] as const) {
      expect(unfaithful({ properties: { [p]: "x\ufffd" } }), p).toMatch(new RegExp(`^its ${name} holds bytes that are not UTF-8 text`));
    }
    expect(unfaithful(m({ "k\ufffd": 1 }))).toMatch(/^a header key holds bytes that are not UTF-8 text/);
    expect(unfaithful(m({ outer: { "k\ufffd": 1 } }))).toMatch(/^a header key in outer holds bytes that are not UTF-8 text/);
    expect(unfaithful({ properties: { messageId: "caf\u00e9-1", correlationId: "c", headers: { k: "v" } } })).toBeUndefined();
  });

  it("has a cluster_id, which topo's AMQP client publishes no message with: moved, the message lost it", () => {
    expect(unfaithful({ properties: { clusterId: "my-cluster" } })).toBe("it has a cluster_id (a property AMQP 0-9-1 deprecates), which topo's AMQP client cannot publish: moved, the message would lose it");
    expect(unfaithful({ properties: { clusterId: "" } })).toBeUndefined();
  });

  // A message stamped in nanoseconds: amqplib reads the 64-bit timestamp as a number, and three
  // messages stamped ...781 to ...783 were moved back all stamped ...768.
  it("has a timestamp property beyond 2^53, which topo's AMQP client reads rounded", () => {
    expect(unfaithful({ properties: { timestamp: 1700000000123456781 } })).toBe("its timestamp property is beyond 2^53 (1700000000123456800): topo's AMQP client reads it rounded, so it cannot write it back unchanged");
    expect(unfaithful({ properties: { timestamp: 1700000000 } })).toBeUndefined();
    expect(unfaithful({ properties: { timestamp: 9007199254740991 } })).toBeUndefined();
  });

  it("lets everything else through: safe integers, doubles, text, buffers, dates, no headers", () => {
    expect(unfaithful(m())).toBeUndefined();
    expect(unfaithful(m({ n: 9007199254740991, x: -1e300, f: 2.5, s: "caf\u00e9", b: Buffer.from([0xde, 0xad]), d: new Date(0), big: 1e300 }))).toBeUndefined();
  });
});

describe("which messages a replace takes for copies of one publish (identity)", () => {
  const base = {
    fields: { exchange: "mplogin", routingKey: "mplogin.async.x" },
    properties: { messageId: "P1", contentType: "application/json", headers: { task: "t" }, deliveryMode: 2 },
    content: Buffer.from("body"),
  };
  const withProps = (p: Record<string, unknown>, fields: Record<string, unknown> = {}) => ({ ...base, fields: { ...base.fields, ...fields }, properties: { ...base.properties, ...p } }) as never;

  it("gives both copies of one publish one identity", () => {
    expect(identity(withProps({}))).toBe(identity(withProps({})));
    expect(identity(withProps({}))).toBeDefined();
    // A quorum queue's delivery counts are no part of it: a message it gives back carries one more.
    expect(identity(withProps({ headers: { task: "t", "x-delivery-count": 1 } }))).toBe(identity(withProps({ headers: { task: "t", "x-delivery-count": 0 } })));
    expect(identity(withProps({ headers: { task: "t", "x-acquired-count": 2 } }))).toBe(identity(withProps({})));
  });

  it("tells apart messages with one id and body that differ in any property, or in how they were published", () => {
    const one = identity(withProps({}));
    for (const p of [{ replyTo: "a" }, { correlationId: "c" }, { expiration: "3600000" }, { priority: 5 }, { deliveryMode: 1 }, { contentEncoding: "gzip" }, { appId: "x" }, { userId: "guest" }, { type: "t2" }, { timestamp: 5 }, { clusterId: "k" }]) {
      expect(identity(withProps(p)), JSON.stringify(p)).not.toBe(one);
    }
    expect(identity(withProps({}, { routingKey: "mplogin.async.y" }))).not.toBe(one);
    expect(identity(withProps({}, { exchange: "other" }))).not.toBe(one);
  });

  it("takes no message without an id for a copy", () => {
    expect(identity(withProps({ messageId: undefined }))).toBeUndefined();
    expect(identity(withProps({ messageId: undefined, correlationId: "task-1" }))).toBeDefined();
  });
});
