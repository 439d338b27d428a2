// Pure: the words of the commands topo prints in hints, pasted into a shell as printed.

import { describe, expect, it } from "vitest";
import { setUserTags, shellPath, shellWord } from "../../src/core/words.js";
import { hintsForInvocation } from "../../src/commands/apply.js";
import { userChangedHint } from "../../src/broker/user-writers.js";
import { ClustersError, TopoError } from "../../src/errors.js";

describe("words of printed commands", () => {
  it("quote a file's path as one word, and never let it pass for an option", () => {
    expect(shellPath("plan.json")).toBe("plan.json");
    expect(shellPath("p;touch PWNED.json")).toBe("'p;touch PWNED.json'");
    expect(shellPath("$(touch x).yaml")).toBe("'$(touch x).yaml'");
    expect(shellPath("-rf.json")).toBe("./-rf.json");
    expect(shellPath("x\ny.yaml")).toBe("$'x\\ny.yaml'");
    expect(shellWord("it's")).toBe(`'it'\\''s'`);
  });

  it("end rabbitmqctl's options before a user or tag that starts with -, which it would read as one", () => {
    // "-n management" named another node: the command failed, and would have dropped two tags.
    expect(setUserTags("advj_m", ["management", "-n", "rabbit@evilhost"], "monitoring")).toMatch(/^rabbitmqctl set_user_tags -- advj_m management -n rabbit@evilhost monitoring \(/);
    expect(setUserTags("u", ["management"], "monitoring")).toMatch(/^rabbitmqctl set_user_tags u management monitoring \(/);
    expect(setUserTags("-u", undefined, "monitoring")).toMatch(/^rabbitmqctl set_user_tags -- -u TAGS\.\.\. monitoring/);
  });

  it("hints of a plain apply name the file and clusters it was run with; a saved plan's are left to applySaved", () => {
    const e = new TopoError("refused", ["review the plan, then run topo apply --allow-destructive; nothing was changed", "topo plan --cluster async shows what is left", "topo apply -f other.yaml stays"]);
    hintsForInvocation(e, "my topology.yaml", ["async"]);
    expect(e.hints).toEqual([
      "review the plan, then run topo apply -f 'my topology.yaml' --cluster async --allow-destructive; nothing was changed",
      "topo plan -f 'my topology.yaml' --cluster async shows what is left",
      "topo apply -f other.yaml stays",
    ]);
    // What speaks of any apply is not a command to rewrite.
    const generic = new TopoError("held", ["a topo apply holds its lock as an exclusive queue", "topo plan needs the monitoring tag"]);
    hintsForInvocation(generic, "t.yaml", ["async"]);
    expect(generic.hints).toEqual(["a topo apply holds its lock as an exclusive queue", "topo plan -f t.yaml needs the monitoring tag"]);
    const plain = new TopoError("refused", ["run topo apply --allow-destructive"]);
    hintsForInvocation(plain, "topology.yaml", undefined);
    expect(plain.hints).toEqual(["run topo apply --allow-destructive"]);
    const cause = new TopoError("one", ["run topo apply again", "topo apply finishes it"]);
    hintsForInvocation(new ClustersError("two", [], false, "apply_incomplete", [cause]), "t.yaml", ["sync", "async"]);
    expect(cause.hints).toEqual(["run topo apply again", "topo apply -f t.yaml --cluster sync --cluster async finishes it"]);
    // A user another apply changed meanwhile: the plan that shows it is of the file apply was run with.
    const changed = new TopoError("changed", [userChangedHint("async")]);
    hintsForInvocation(changed, "other.yaml", undefined);
    expect(changed.hints).toEqual(["run topo apply again: it plans from the user as it is now; topo plan -f other.yaml --cluster async shows it"]);
  });
});

describe("--cluster given several names in one", () => {
  it("says to repeat --cluster, where the command takes it more than once, or that it takes one", async () => {
    const { unknownClusterHints } = await import("../../src/core/words.js");
    const { selectClusters } = await import("../../src/commands/source.js");
    const { parseConfig } = await import("../../src/config/load.js");
    const desired = parseConfig(
      "version: 1\nclusters:\n  sync:\n    url: amqp://guest:guest@127.0.0.1:1/s\n  async:\n    url: amqp://guest:guest@127.0.0.1:1/a\nservices: [mplogin]\n",
      "t.yaml",
      {},
    );
    // "sync,async" was only "no cluster named ...; clusters in the file: sync, async".
    let thrown: unknown;
    try {
      selectClusters(desired, ["sync,async"], "t.yaml");
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(TopoError);
    expect((thrown as TopoError).hints).toEqual(["--cluster takes one name; repeat it for more: --cluster sync --cluster async", "clusters in the file: sync, async"]);
    expect(unknownClusterHints(["sync async"], ["sync", "async"], false)[0]).toBe("--cluster takes one name: this command works on one cluster at a time (--cluster sync)");
    // A name that is no list of the file's clusters gets the list alone.
    expect(unknownClusterHints(["snyc"], ["sync", "async"], true)).toEqual(["clusters in the file: sync, async"]);
    expect(unknownClusterHints(["sync,nowhere"], ["sync", "async"], true)).toEqual(["clusters in the file: sync, async"]);
  });
});
