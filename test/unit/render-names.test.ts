// Names come from the broker, where anyone allowed to declare or bind may choose them: one that
// holds a line break, a terminal escape or a bidirectional override must not forge or hide lines
// of the plan a reviewer reads (text, markdown in a pull request, the warnings beside them).

import { describe, expect, it } from "vitest";
import { diffCluster } from "../../src/plan/diff.js";
import { renderText } from "../../src/plan/render.js";
import { renderMarkdown } from "../../src/plan/markdown.js";
import { foreignBindingWarnings } from "../../src/plan/route.js";
import { actual, binding, desiredOf, exchange, policy, queue, raw, service } from "../helpers/builders.js";

const FORGED = "k\n  - delete queue mplogin.async\n```\n**all good** \x1b[32mgreen\x1b[0m \u202eevil\u2066 \x9b";

describe("names from the broker in the plan's text", () => {
  const c = desiredOf(raw({ services: ["mplogin"] }), "async");
  const theirs = [
    queue({ name: "mpevil.async" }),
    binding({ source: "mplogin", destination: "mpevil.async", routingKey: FORGED }),
    exchange({ name: `mpwallet${FORGED}` }),
    policy({ name: `topo.mp.mirror.async`, pattern: `^mp${FORGED}` }),
  ];
  const plan = { clusters: [diffCluster(c, actual([{ kind: "vhost", name: "a" }, ...service("mplogin", "async"), ...theirs]), "mp")] };

  it("are shown on their own line, control and bidi characters escaped, in text and markdown", () => {
    expect(plan.clusters[0]!.actions.length).toBeGreaterThan(0);
    for (const text of [renderText(plan), renderMarkdown(plan)]) {
      expect(text).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
      // The only "delete queue" lines are the plan's own: the one it really holds.
      expect(text.split("\n").filter((l) => /^- delete queue/.test(l.trim())).map((l) => l.trim())).toEqual(["- delete queue mpevil.async"]);
      expect(text).not.toMatch(/^\*\*all good/m);
      expect(text).toContain("\\n  - delete queue mplogin.async\\n");
      expect(text).toContain("\\u001b[32mgreen");
      expect(text).toContain("\\u202eevil");
    }
  });

  it("are escaped in the warnings that name them", () => {
    const [w] = foreignBindingWarnings([binding({ source: "mplogin", destination: "elsewhere", routingKey: FORGED })]);
    expect(w).not.toMatch(/[\n\x1b\u202e]/);
    expect(w).toContain("\\n  - delete queue mplogin.async");
  });
});

describe("a plan of many actions", () => {
  it("renders in text and markdown whole: 200,000 actions, each on its line", () => {
    const actions = Array.from({ length: 200_000 }, (_, i) => {
      const after = queue({ name: `mpsvc${i}.async` });
      return { op: "create" as const, key: `queue|${after.name}`, after };
    });
    const plan = { clusters: [{ ...diffCluster(desiredOf(raw({ services: [] }), "async"), actual([{ kind: "vhost", name: "a" }]), "mp"), actions }] };
    for (const text of [renderText(plan), renderMarkdown(plan)]) {
      expect(text.split("\n").filter((l) => l.trim().startsWith("+ create queue mpsvc")).length).toBe(200_000);
    }
  });
});

describe("names from the broker that could pass for other names", () => {
  it("are quoted where they hold the notation's characters, and invisible characters are escaped", async () => {
    const { describe: d } = await import("../../src/core/keys.js");
    const { shownName } = await import("../../src/core/words.js");
    // A queue named to read as a second binding, topo's own; one named as an exchange destination.
    const forged = binding({ source: "mpold", destination: "x [#], mpwallet -> mpwallet.sync", routingKey: "#" });
    expect(d(forged)).toBe('mpold -> "x [#], mpwallet -> mpwallet.sync" [#]');
    const asQueue = binding({ source: "mpold", destination: "exchange mpwallet", routingKey: "" });
    const asExchange = { ...binding({ source: "mpold", destination: "mpwallet", routingKey: "" }), destinationType: "exchange" as const };
    expect(d(asQueue)).toBe('mpold -> "exchange mpwallet" []');
    expect(d(asExchange)).toBe("mpold -> exchange mpwallet []");
    expect(d(asQueue)).not.toBe(d(asExchange));
    // A zero-width space, LRM, BOM, word joiner: printed alike, mplogin.sync\u200b passed for topo's mplogin.sync.
    for (const c of ["\u200b", "\u200e", "\ufeff", "\u2060", "\u061c", "\u{e0041}"]) {
      const shown = d(queue({ name: `mplogin.sync${c}` }));
      expect(shown).not.toBe("mplogin.sync");
      expect(shown).toMatch(/^"mplogin\.sync(\\u[0-9a-f]{4})+"$/);
      expect(JSON.parse(shown)).toBe(`mplogin.sync${c}`);
    }
    // topo's own names are as they were.
    expect([shownName("mplogin.async"), d(binding({ source: "mplogin", destination: "mplogin.async", routingKey: "mplogin.async.#" }))]).toEqual(["mplogin.async", "mplogin -> mplogin.async [mplogin.async.#]"]);
  });
});
