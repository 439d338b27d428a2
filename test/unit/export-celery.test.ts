// The Celery config generator on plain objects: no broker, no Python (the integration test loads
// the module into a real worker).

import { describe, expect, it } from "vitest";
import { normalize, type RawConfig } from "../../src/config/normalize.js";
import { TopoError } from "../../src/errors.js";
import { brokerEnvName, celeryCluster, celeryModule, py, WORKER_OPTIONS, type CeleryExportOptions } from "../../src/export/celery.js";
import { TASK_NAME_BODY } from "../../src/core/naming.js";
import type { DesiredState } from "../../src/model.js";

// --- builders -------------------------------------------------------------------------------
const raw = (o: Partial<RawConfig> = {}): RawConfig => ({
  version: 1,
  clusters: { sync: { url: "amqp://topo:Sync-Pa55word@rabbit-sync:5672/sync" }, async: { url: "amqp://topo:Async-Pa55word@rabbit-async:5672/async" } },
  services: ["mplogin", { name: "mppayment", sync: false, async: { arguments: { "x-max-length": 100000 } } }],
  ...o,
});

function desired(r: RawConfig = raw()): DesiredState {
  const n = normalize(r);
  expect(n.problems).toEqual([]);
  return n.desired;
}

const generate = (d: DesiredState, o: Partial<CeleryExportOptions> = {}) => celeryModule(d, { source: "topology.yaml", cluster: "sync", ...o });

/** The source of one Queue(...) entry of task_queues. */
function queueBlock(text: string, name: string): string {
  const start = text.indexOf(`    Queue(\n        ${JSON.stringify(name)},\n`);
  expect(start, `no Queue ${name} in the module`).toBeGreaterThanOrEqual(0);
  return text.slice(start, text.indexOf("\n    ),", start));
}

function topLevel(text: string, setting: string): string | undefined {
  return text.split("\n").find((l) => l.startsWith(`${setting} = `))?.slice(setting.length + 3);
}

function thrown(fn: () => unknown): TopoError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TopoError);
    return e as TopoError;
  }
  throw new Error("expected a TopoError");
}

/** `check` given the warnings topo export celery says of each cluster of a file of `text` (a file of its own, removed after). */
async function exportWarnings(text: string, check: (warned: (cluster: string, extra?: Partial<{ brokerEnv: string }>) => string[]) => void): Promise<void> {
  const { exportCelery } = await import("../../src/commands/export-celery.js");
  const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(join(tmpdir(), "topo-export-"));
  try {
    const file = join(dir, "t.yaml");
    writeFileSync(file, text);
    check((cluster, extra = {}) => exportCelery({ file, cluster, env: {}, ...extra }).warnings);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// --- tests ----------------------------------------------------------------------------------
describe("export celery: queues", () => {
  it("describes each queue with exactly topo's flags, exchange and binding key, and never declares it", () => {
    const sync = generate(desired()).text;
    const async = generate(desired(), { cluster: "async" }).text;
    expect(queueBlock(sync, "mplogin.sync")).toBe(
      [
        `    Queue(`,
        `        "mplogin.sync",`,
        `        Exchange("mplogin", type="topic", durable=True, auto_delete=False, delivery_mode=1, no_declare=True),`,
        `        routing_key="mplogin.sync.#",`,
        `        durable=False,`,
        `        auto_delete=False,`,
        `        exclusive=False,`,
        `        queue_arguments={},`,
        `        no_declare=True,`,
      ].join("\n"),
    );
    expect(queueBlock(async, "mplogin.async")).toContain(`        durable=True,\n`);
    expect(queueBlock(async, "mplogin.async")).toContain(`delivery_mode=2, no_declare=True),`);
    // Only the cluster's own queues: a Celery app connects to one broker.
    expect(sync).not.toContain(`Queue(\n        "mplogin.async"`);
    expect(async).not.toContain(`Queue(\n        "mplogin.sync"`);
    expect(async).not.toContain(`Queue(\n        "mppayment.sync"`);
  });

  it("sends x-arguments with their types, and x-queue-type only for non-classic queues", () => {
    const d = desired(
      raw({
        services: [
          { name: "mplogin", sync: { arguments: { "x-max-length": 1000, "x-overflow": "reject-publish", "x-single-active-consumer": true } } },
          { name: "mpwallet", sync: { type: "quorum", arguments: { "x-delivery-limit": 5 } }, async: false },
        ],
      }),
    );
    const text = generate(d).text;
    expect(queueBlock(text, "mplogin.sync")).toContain(`queue_arguments={"x-max-length": 1000, "x-overflow": "reject-publish", "x-single-active-consumer": True},`);
    const quorum = queueBlock(text, "mpwallet.sync");
    expect(quorum).toContain(`queue_arguments={"x-delivery-limit": 5, "x-queue-type": "quorum"},`);
    expect(quorum).toContain(`        durable=True,\n`);
    expect(queueBlock(text, "mplogin.sync")).not.toContain("x-queue-type");
  });

  it("refuses a cluster with a stream queue: a Celery worker would never run a task sent while it was down", () => {
    // Measured on 4.0.5 with Celery 5.2.6 on the exported module: a task sent to a stream queue
    // while no worker ran was never delivered to the worker started afterwards (it reads from "next").
    const d = desired(raw({ services: [{ name: "mplogin", async: { type: "stream" } }] }));
    const e = thrown(() => generate(d, { cluster: "async" }));
    expect(e.message).toBe(
      "cluster async: queue mplogin.async is a stream, and a Celery worker reads a stream from its end: a task sent while no worker of it runs is never run, and a worker that restarts does not see the tasks it missed",
    );
    expect(e.hints).toContain("give mplogin.async type quorum or classic (services[].async.type or defaults.async.type), or export only clusters without streams");
    // The other cluster has none: its module is written.
    expect(generate(d, { cluster: "sync" }).queues).toEqual(["mplogin.sync"]);
  });

  it("makes prefetch per consumer only when a queue is quorum or stream (they refuse global QoS)", () => {
    const classic = generate(desired()).text;
    // Every module's transport turns publisher confirms on again on a channel the broker reopened.
    expect(topLevel(classic, "broker_transport")).toBe("_TopoTransport");
    expect(classic).toContain("class _TopoTransport(_pyamqp.Transport):\n    Connection = _Connection\n\n\nbroker_transport");
    expect(classic).toMatch(/class _ConfirmingChannel\(_pyamqp\.Channel\):\n {4}def _do_revive\(self\):\n {8}self\._confirm_selected = False\n {8}super\(\)\._do_revive\(\)/);
    expect(classic).not.toContain("qos_semantics_matches_spec");
    const quorum = generate(desired(raw({ defaults: { sync: { type: "quorum" } } }))).text;
    expect(topLevel(quorum, "broker_transport")).toBe("_TopoTransport");
    expect(quorum).toContain("from kombu.transport import pyamqp as _pyamqp");
    expect(quorum).toMatch(/def qos_semantics_matches_spec\(self, connection\):\n {8}return True/);
    const tlsQuorum = generate(
      desired(raw({ clusters: { sync: { url: "amqps://u:p@h/sync" }, async: { url: "amqp://u:p@h/a" } }, defaults: { sync: { type: "quorum" } } })),
    ).text;
    expect(tlsQuorum).toContain("class _TopoTransport(_pyamqp.SSLTransport):");
  });

  it("never creates missing queues and keeps Celery from adding x-max-priority", () => {
    const text = generate(desired()).text;
    expect(topLevel(text, "task_create_missing_queues")).toBe("False");
    expect(topLevel(text, "task_queue_max_priority")).toBe("None");
  });
});

describe("export celery: least privilege", () => {
  it("turns off remote control and events, and names the worker options Celery has no setting for", () => {
    for (const cluster of ["sync", "async"]) {
      const text = generate(desired(), { cluster }).text;
      expect(topLevel(text, "worker_enable_remote_control")).toBe("False");
      expect(topLevel(text, "worker_send_task_events")).toBe("False");
      expect(topLevel(text, "task_send_sent_event")).toBe("False");
      expect(text).toContain(`#   celery -A <app> worker -Q <service>.<kind> ${WORKER_OPTIONS.join(" ")}\n`);
      expect(text).toContain("# Nothing here declares the service queues and exchanges: run topo apply before starting workers.\n");
      // Every Queue and every Exchange of the module: none is declared by Celery.
      expect(text.match(/^ {4}Queue\(/gm)?.length).toBe(text.match(/^ {8}no_declare=True,$/gm)?.length);
      expect(text.match(/Exchange\("/g)?.length).toBe(text.match(/delivery_mode=\d, no_declare=True\)/g)?.length);
    }
    expect(WORKER_OPTIONS).toEqual(["--without-mingle", "--without-gossip", "--without-heartbeat"]);
  });

  it("routes only task names whose task part the users' topic permissions allow", () => {
    const text = generate(desired()).text;
    expect(text).toContain(`_TASK = re.compile(r"\\A${TASK_NAME_BODY}\\Z")`);
    expect(text).toMatch(/ {4}if not _TASK\.match\(task_name\):\n {8}raise TopoRouteError\(/);
  });
});

describe("export celery: routes and results", () => {
  it("routes every queue of the cluster by name, with the delivery mode of its kind", () => {
    const d = desired(raw({ services: ["mplogin", "mpwallet"], defaults: { async: { cluster: "sync" } }, clusters: { sync: { url: "amqp://u:p@h/s" } } }));
    const text = generate(d).text;
    expect(text).toContain(
      [
        `_ROUTES = {`,
        `    "mplogin.sync": ("mplogin", 1),`,
        `    "mplogin.async": ("mplogin", 2),`,
        `    "mpwallet.sync": ("mpwallet", 1),`,
        `    "mpwallet.async": ("mpwallet", 2),`,
        `}`,
      ].join("\n"),
    );
    expect(text).toContain(`_OTHER_CLUSTERS = {\n}`);
    expect(topLevel(text, "task_routes")).toBe("(route_task,)");
    expect(text).toContain(`return {"queue": queue, "exchange": exchange, "routing_key": name, "delivery_mode": delivery_mode, "mandatory": True}`);
    // A task the broker did not take raises instead of looking sent (celery.test.ts sends them).
    expect(topLevel(text, "broker_transport_options")).toBe(`{"confirm_publish": True}`);
    // Both kinds on one broker: rpc:// for the sync tasks, ignore_result set per task by kind.
    expect(topLevel(text, "result_backend")).toBe(`"rpc://"`);
    expect(topLevel(text, "task_annotations")).toBe("(_ResultsByKind(),)");
    expect(text).toContain(`return {"ignore_result": parts[1] == "async"}`);
  });

  it("names the cluster of every other queue, so a misrouted task says where it belongs", () => {
    const text = generate(desired()).text;
    expect(text).toContain(`_OTHER_CLUSTERS = {\n    "mplogin.async": "async",\n    "mppayment.async": "async",\n}`);
    expect(text).toContain(`_SERVICE = re.compile(r"\\A" + re.escape("mp") + r"[a-z_]+\\Z")`);
    expect(generate(desired(raw({ prefix: "shop_" , services: ["shop_cart"] }))).text).toContain(`re.escape("shop_")`);
  });

  it("gives the sync side rpc:// results and the async side none", () => {
    const sync = generate(desired()).text;
    expect(topLevel(sync, "result_backend")).toBe(`"rpc://"`);
    expect(topLevel(sync, "result_persistent")).toBe("False");
    expect(topLevel(sync, "task_ignore_result")).toBe("False");
    const async = generate(desired(), { cluster: "async" }).text;
    expect(topLevel(async, "result_backend")).toBe("None");
    expect(topLevel(async, "task_ignore_result")).toBe("True");
  });

  it("defaults to the cluster's first queue, or the one asked for", () => {
    const d = desired(raw({ services: ["mpzeta", "mpalpha"] }));
    const first = generate(d);
    expect(first.defaultQueue).toBe("mpzeta.sync");
    expect(topLevel(first.text, "task_default_queue")).toBe(`"mpzeta.sync"`);
    expect(topLevel(first.text, "task_default_exchange")).toBe(`"mpzeta"`);
    expect(topLevel(first.text, "task_default_exchange_type")).toBe(`"topic"`);
    expect(topLevel(first.text, "task_default_delivery_mode")).toBe(`"transient"`);
    const chosen = generate(d, { defaultQueue: "mpalpha.sync" });
    expect(topLevel(chosen.text, "task_default_queue")).toBe(`"mpalpha.sync"`);
    expect(chosen.text).toContain("--default-queue mpalpha.sync -o <this file>");
    expect(topLevel(generate(d, { cluster: "async" }).text, "task_default_delivery_mode")).toBe(`"persistent"`);
    const e = thrown(() => generate(d, { defaultQueue: "mpalpha.async" }));
    expect(e.message).toBe("--default-queue mpalpha.async: cluster sync has no such queue");
    expect(e.hints).toEqual(["queues on cluster sync: mpzeta.sync, mpalpha.sync"]);
  });
});

describe("export celery: broker, header and secrets", () => {
  it("reads the broker URL from TOPO_BROKER_URL_<CLUSTER>, or the variable asked for", () => {
    expect(brokerEnvName("sync")).toBe("TOPO_BROKER_URL_SYNC");
    expect(brokerEnvName("eu-west_2")).toBe("TOPO_BROKER_URL_EU_WEST_2");
    const text = generate(desired()).text;
    expect(text).toContain(`broker_url = os.environ.get("TOPO_BROKER_URL_SYNC")\nif not broker_url:\n    raise RuntimeError(`);
    expect(text).toContain(`amqp://<user>:<password>@rabbit-sync:5672/sync`);
    const custom = generate(desired(), { brokerEnv: "CELERY_BROKER" });
    expect(custom.brokerEnv).toBe("CELERY_BROKER");
    expect(custom.text).toContain(`os.environ.get("CELERY_BROKER")`);
    expect(custom.text).toContain(`--broker-env CELERY_BROKER -o <this file>`);
    const notName = thrown(() => generate(desired(), { brokerEnv: "1BAD-NAME" }));
    expect(notName.message).toMatch(/^--broker-env takes the name of an environment variable \(letters, digits and _, not starting with a digit\); what it was given is not one, and is not shown: it may be the broker URL itself$/);
    expect(notName.hints).toEqual(["put the broker URL in a variable and name that: --broker-env TOPO_BROKER_URL_SYNC"]);
    // The value given where the name belongs (--broker-env "$BROKER_URL") is never echoed: without
    // its scheme, or as a password alone, nothing would mask it.
    const slip = thrown(() => generate(desired(), { brokerEnv: "u:Sup3r-S3cret@rabbit:5672/v" }));
    expect(`${slip.message}\n${slip.hints.join("\n")}`).not.toContain("Sup3r-S3cret");
  });

  // `--broker-env "$RABBITMQ_PASSWORD"`: a password shaped like a name was written into the module
  // three times (the command in its header, the comment, os.environ.get) and printed ("the broker
  // URL is read from $<password>"). The variable whose value it is gives it away, as for --password-env.
  it("refuses, unshown, a value given where the broker URL variable's name belongs", () => {
    const pw = "Hunter2Secret9";
    const env = { RABBITMQ_PASSWORD: pw, BROKER_URL: `amqp://u:${pw}@rabbit-sync:5672/sync` };
    const asPassword = thrown(() => generate(desired(), { brokerEnv: pw, env }));
    expect(asPassword.message).toBe("--broker-env names a variable that is not set, and the name it was given (not shown) is the value of $RABBITMQ_PASSWORD");
    expect(asPassword.hints).toEqual([
      `--broker-env takes the name of the variable that holds the whole broker URL, and $RABBITMQ_PASSWORD holds no URL (no "://"): put the URL (amqp://<user>:<password>@rabbit-sync:5672/sync) in a variable and name that: --broker-env TOPO_BROKER_URL_SYNC`,
    ]);
    const asUrl = thrown(() => generate(desired(), { brokerEnv: env.BROKER_URL, env }));
    expect(asUrl.message).toBe("what --broker-env was given (not shown) is the value of $BROKER_URL, not a variable's name");
    expect(asUrl.hints).toEqual(["--broker-env takes a variable's name: if $BROKER_URL holds the broker URL, write --broker-env BROKER_URL"]);
    for (const e of [asPassword, asUrl]) expect(`${e.message}\n${e.hints.join("\n")}`).not.toContain(pw);
    // A name, set or not, is taken; so is the default, whatever the environment holds.
    expect(generate(desired(), { brokerEnv: "BROKER_URL", env }).brokerEnv).toBe("BROKER_URL");
    expect(generate(desired(), { brokerEnv: "CELERY_BROKER", env }).brokerEnv).toBe("CELERY_BROKER");
    expect(generate(desired(), { env: { X: "TOPO_BROKER_URL_SYNC" } }).brokerEnv).toBe("TOPO_BROKER_URL_SYNC");
    // A name a pipeline passes on through another variable (--broker-env "$BROKER_VAR"), its own
    // variable not set where the module is exported: a name, written as names are.
    expect(generate(desired(), { brokerEnv: "CELERY_BROKER_URL", env: { BROKER_VAR: "CELERY_BROKER_URL" } }).brokerEnv).toBe("CELERY_BROKER_URL");
  });

  it("export celery tells the password from a name in the environment it runs in, and writes nothing", async () => {
    const { exportCelery } = await import("../../src/commands/export-celery.js");
    const { existsSync, mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "topo-broker-env-"));
    const saved = process.env.TOPO_TEST_BROKER_PW;
    try {
      const file = join(dir, "t.yaml");
      const output = join(dir, "celeryconfig_sync.py");
      writeFileSync(file, "version: 1\nclusters:\n  sync: { url: 'amqp://u@h:5672/a' }\nservices: [{ name: mplogin, async: false }]\n");
      process.env.TOPO_TEST_BROKER_PW = "Hunter2Secret9";
      const e = thrown(() => exportCelery({ file, brokerEnv: "Hunter2Secret9", output }));
      expect(e.message).toContain("is the value of $TOPO_TEST_BROKER_PW");
      expect(existsSync(output)).toBe(false);
    } finally {
      if (saved === undefined) delete process.env.TOPO_TEST_BROKER_PW;
      else process.env.TOPO_TEST_BROKER_PW = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("writes no password, from the AMQP URL or the management URL", () => {
    const d = desired(
      raw({
        clusters: {
          sync: { url: "amqp://topo:Sync-Pa55word@rabbit-sync:5672/sync", management: "http://admin:Mgmt-Pa55word@rabbit-sync:15672" },
          async: { url: "amqps://topo:Async%2FPa55@rabbit-async/async" },
        },
      }),
    );
    for (const cluster of ["sync", "async"]) {
      const text = generate(d, { cluster }).text;
      for (const secret of ["Sync-Pa55word", "Mgmt-Pa55word", "Async/Pa55", "Async%2FPa55", "Pa55"]) expect(text).not.toContain(secret);
      // Nor a user name: the comment shows where the URL points, with placeholders for both.
      expect(text).not.toMatch(/topo:|admin:/);
    }
  });

  it("says in its header that topo made it, from which file, and not to edit it", () => {
    const text = generate(desired(), { source: "deploy/topology.yaml" }).text;
    const header = text.split("\n").slice(0, 3);
    expect(header[0]).toBe(`# Celery configuration for cluster "sync" of "deploy/topology.yaml".`);
    expect(header[1]).toMatch(/^# Generated by topo\. Do not edit/);
    expect(header[2]).toBe(`#   topo export celery -f deploy/topology.yaml --cluster sync -o <this file>`);
  });

  it("keeps a file name with a line break inside its comment and strings", () => {
    const text = generate(desired(), { source: 'x.yaml\nimport os; os.system("boom")' }).text;
    expect(text.split("\n").some((l) => l.startsWith("import os;"))).toBe(false);
    expect(text).toContain(`"x.yaml\\nimport os; os.system(\\"boom\\")"`);
    expect(/^[\x20-\x7e\n]*$/.test(text)).toBe(true);
  });

  it("configures TLS for amqps clusters from the file's tls settings", () => {
    const tls = (t: object) =>
      generate(desired(raw({ clusters: { sync: { url: "amqps://u:p@rabbit/sync", tls: t }, async: { url: "amqp://u:p@h/a" } } }))).text;
    const verified = tls({ ca: "/etc/topo/ca.pem", cert: "/etc/topo/client.pem", key: "/etc/topo/client.key" });
    expect(verified).toContain(
      `broker_use_ssl = {\n    "cert_reqs": ssl.CERT_REQUIRED,\n    "server_hostname": None,\n    "ca_certs": "/etc/topo/ca.pem",\n    "certfile": "/etc/topo/client.pem",\n    "keyfile": "/etc/topo/client.key",\n}`,
    );
    expect(verified).toContain("\nimport ssl\n");
    expect(verified).toContain("amqps://<user>:<password>@rabbit:5671/sync");
    expect(tls({ insecure: true })).toContain(`broker_use_ssl = {\n    "cert_reqs": ssl.CERT_NONE,\n}`);
    expect(generate(desired()).text).not.toContain("broker_use_ssl");
  });
});

describe("export celery: which cluster", () => {
  it("asks for --cluster when queues are on more than one, with the commands to run", () => {
    const e = thrown(() => celeryModule(desired(), { source: "topology.yaml" }));
    expect(e.message).toBe("topology.yaml has queues on 2 clusters (sync, async), and a Celery app connects to one broker; choose one with --cluster");
    expect(e.hints).toEqual([
      "topo export celery -f topology.yaml --cluster sync -o celeryconfig_sync.py",
      "topo export celery -f topology.yaml --cluster async -o celeryconfig_async.py",
      "an edge that sends both kinds of task loads each module into a Celery app of its own",
    ]);
  });

  it("takes the only cluster that holds queues without --cluster", () => {
    const d = desired(raw({ services: [{ name: "mplogin", sync: false }] }));
    expect(celeryCluster(d, undefined, "topology.yaml").target.name).toBe("async");
    expect(celeryModule(d, { source: "topology.yaml" }).cluster).toBe("async");
  });

  it("refuses an unknown cluster and one without queues", () => {
    const unknown = thrown(() => generate(desired(), { cluster: "eu" }));
    expect(unknown.message).toBe(`no cluster named "eu" in topology.yaml`);
    expect(unknown.hints).toEqual(["clusters in the file: sync, async"]);
    const empty = thrown(() => generate(desired(raw({ services: [{ name: "mplogin", sync: false }] }))));
    expect(empty.message).toMatch(/^cluster sync holds no queues in topology\.yaml/);
  });
});

describe("python literals", () => {
  it.each([
    [null, "None"],
    [true, "True"],
    [false, "False"],
    [0, "0"],
    [-5, "-5"],
    [100000, "100000"],
    [2 ** 53, "9007199254740992"],
    // amqplib sends any number at or above 2^50 as an integer, below 2^63.
    [2 ** 62, "4611686018427387904"],
    [1.5, "1.5"],
    [1e-7, "1e-7"],
    [2 ** 63, "9223372036854776000.0"],
    [1e21, "1e+21"],
    [Infinity, `float("inf")`],
    ["plain", `"plain"`],
    [`q"uote\\back`, `"q\\"uote\\\\back"`],
    ["line\nbreak\ttab\r", `"line\\nbreak\\ttab\\r"`],
    ["é日😀\u0000\u2028", `"\\xe9\\u65e5\\U0001f600\\x00\\u2028"`],
    [[1, "a", [true]], `[1, "a", [True]]`],
    [{ "x-a": 1, b: { c: null } }, `{"x-a": 1, "b": {"c": None}}`],
  ])("%j → %s", (value, literal) => {
    expect(py(value as never)).toBe(literal);
  });
});

describe("two clusters whose names give one variable", () => {
  it("export celery warns that an app loading both modules would connect both to one broker", async () => {
    const text = "version: 1\nclusters:\n  eu-sync: { url: 'amqp://u:p@h:5672/a' }\n  eu_sync: { url: 'amqp://u:p@h:5672/b' }\ndefaults:\n  sync: { cluster: eu-sync }\n  async: { cluster: eu_sync }\nservices: [mplogin]\n";
    await exportWarnings(text, (warned) => {
      expect(warned("eu-sync")).toContain("cluster eu-sync's module reads TOPO_BROKER_URL_EU_SYNC, as cluster eu_sync's does: an app that loads both would connect both to one broker; give one a variable of its own with --broker-env, or rename a cluster");
      expect(warned("eu_sync").join("\n")).toContain("cluster eu_sync's module reads TOPO_BROKER_URL_EU_SYNC, as cluster eu-sync's does");
      expect(warned("eu-sync", { brokerEnv: "EU_SYNC_URL" }).join("\n")).not.toContain("one broker");
    });
  });
});

describe("export celery: quorum queues and delayed tasks", () => {
  // Measured with Celery 5.2.6 on 3.10.8: the per-consumer limit quorum queues need keeps a worker
  // that holds countdown tasks from taking others, on every queue of the module, until they are due.
  it("warns, for a cluster with quorum queues only, that a worker holding countdown tasks takes no others before Celery 5.5", async () => {
    const text = "version: 1\nclusters:\n  sync: { url: 'amqp://u:p@h:5672/a' }\n  async: { url: 'amqp://u:p@h:5672/b' }\nservices:\n  - mplogin\n  - { name: mpwallet, async: { type: quorum } }\n";
    await exportWarnings(text, (warned) => {
      const on = (cluster: string) => warned(cluster).filter((w) => w.includes("countdown"));
      expect(on("async")).toEqual([expect.stringMatching(/^cluster async has quorum queues \(mpwallet\.async\), so the module sets Celery's prefetch limit per consumer, .*with Celery before 5\.5, a worker that holds as many ETA or countdown tasks .* takes no other task from any queue of the module until they are due/)]);
      expect(on("sync")).toEqual([]);
    });
  });

  // Measured with Celery 5.2.6 on 4.3.6: a countdown of 20 s on a quorum queue of
  // x-consumer-timeout 10000 was run 7 times in 70 s, and was gone once the worker stopped.
  it("warns, per consumer timeout, that a countdown due later is run more than once and then dropped", async () => {
    const text =
      "version: 1\nclusters:\n  sync: { url: 'amqp://u:p@h:5672/a' }\n  async: { url: 'amqp://u:p@h:5672/b' }\nservices:\n  - mplogin\n" +
      "  - { name: mpwallet, async: { arguments: { x-consumer-timeout: 600000 } } }\n  - { name: mppay, async: { type: quorum, arguments: { x-consumer-timeout: 10000 } } }\n  - { name: mpaudit, async: { arguments: { x-consumer-timeout: 600000 } } }\n";
    await exportWarnings(text, (warned) => {
      const on = (cluster: string) => warned(cluster).filter((w) => w.includes("x-consumer-timeout"));
      expect(on("async")).toEqual([
        expect.stringMatching(/^queue mppay\.async has x-consumer-timeout 10000 \(10 s\): Celery holds an ETA or countdown task .* unacknowledged in the worker until it is due, so one due later than that is taken from the worker, delivered again and run more than once, and dropped at the queue's delivery limit .*; keep countdowns on it shorter, or raise x-consumer-timeout/),
        expect.stringMatching(/^queues mpaudit\.async, mpwallet\.async have x-consumer-timeout 600000 \(10 min\): /),
      ]);
      expect(on("sync")).toEqual([]);
    });
  });
});

describe("export celery: a large topology", () => {
  // The routes of 40,000 services, spread into one call, overflowed the call stack: "Maximum call
  // stack size exceeded", on a file validate, plan and export definitions took.
  it("writes the module of 60,000 services, every queue routed", () => {
    const letters = (i: number) => Array.from({ length: 4 }, (_, k) => String.fromCharCode(97 + (Math.floor(i / 26 ** k) % 26))).join("");
    const services = Array.from({ length: 60_000 }, (_, i) => `mp${letters(i)}`);
    const text = generate(desired(raw({ services })), { cluster: "sync" }).text;
    expect(text).toContain(`    "mp${letters(59_999)}.sync": ("mp${letters(59_999)}", 1),`);
    expect(text).toContain(`    "mp${letters(59_999)}.async": "async",`);
  });
});
