#!/usr/bin/env node
// The command line: commander wiring, output and exit codes. The only place that prints final
// results or calls process.exit. Commands are imported lazily so `topo --help` starts fast.

import { Command, InvalidArgumentError, Option } from "commander";
import { ConfigError, TopoError } from "./errors.js";
import { redactText } from "./redact.js";

const out = (s: string) => process.stdout.write(`${redactText(s)}\n`);
const err = (s: string) => process.stderr.write(`${redactText(s)}\n`);

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError("must be a number of seconds");
  return n;
}

function fail(e: unknown, json: boolean): never {
  if (e instanceof ConfigError) {
    for (const p of e.problems) err(`${p.file}:${p.line}:${p.col}: ${p.message}`);
    err(`${e.problems.length} problem${e.problems.length === 1 ? "" : "s"} found; nothing was sent to any broker.`);
  } else if (e instanceof TopoError) {
    err(`Error: ${e.message}`);
    for (const h of e.hints) err(`  hint: ${h}`);
  } else {
    // Not one of ours: still no stack trace for users, but enough to report it.
    err(`Error: ${e instanceof Error ? e.message : String(e)}`);
    err("  hint: this looks like a bug in topo; please report it with the command you ran");
  }
  if (json) out(JSON.stringify({ error: redactText(e instanceof Error ? e.message : String(e)) }));
  process.exit(e instanceof TopoError ? e.exitCode : 1);
}

const program = new Command();
program
  .name("topo")
  .description("Provision RabbitMQ topology for Celery-style services from one declarative YAML file.")
  .version("0.1.0")
  .showHelpAfterError()
  .configureOutput({ writeErr: (s) => process.stderr.write(redactText(s)) });

const fileOption = () => new Option("-f, --file <file>", "topology file").default("topology.yaml");

program
  .command("validate")
  .description("check the file against the schema and its cross-references; no network")
  .addOption(fileOption())
  .action(async (o: { file: string }) => {
    try {
      const { validate } = await import("./commands/validate.js");
      const r = validate(o.file);
      out(`${r.file} is valid: ${r.services} service${r.services === 1 ? "" : "s"} on ${r.clusters.map((c) => `${c.name} (${c.queues} queues)`).join(", ")}.`);
    } catch (e) {
      fail(e, false);
    }
  });

program
  .command("plan")
  .description("show what apply would change on each cluster")
  .addOption(fileOption())
  .option("--cluster <name>", "only this cluster")
  .option("--json", "print the plan as JSON")
  .option("--detailed-exitcode", "exit 0 when there are no changes, 2 when there are, 1 on error")
  .option("--insecure", "do not verify TLS certificates (tests only)")
  .action(async (o: { file: string; cluster?: string; json?: boolean; detailedExitcode?: boolean; insecure?: boolean }) => {
    try {
      const [{ plan }, render, diff] = await Promise.all([import("./commands/plan.js"), import("./plan/render.js"), import("./plan/diff.js")]);
      const p = await plan({ file: o.file, cluster: o.cluster, insecure: o.insecure });
      out(o.json ? JSON.stringify(render.planJson(p), null, 2) : render.renderText(p));
      process.exit(o.detailedExitcode && !diff.isEmpty(p) ? 2 : 0);
    } catch (e) {
      fail(e, !!o.json);
    }
  });

program
  .command("apply")
  .description("make each cluster match the file, then read it back to confirm")
  .addOption(fileOption())
  .option("--cluster <name>", "only this cluster")
  .option("--allow-destructive", "allow replacing and deleting objects (never drops messages by itself)")
  .option("--allow-data-loss", "allow deleting or replacing queues that hold messages, losing them")
  .addOption(new Option("--lock-timeout <seconds>", "how long to wait for another apply on the same cluster").argParser(seconds).default(60))
  .option("--json", "print the plan and the outcome as JSON")
  .option("--insecure", "do not verify TLS certificates (tests only)")
  .option("--verbose", "print how long each step takes, on stderr")
  .action(
    async (o: {
      file: string;
      cluster?: string;
      allowDestructive?: boolean;
      allowDataLoss?: boolean;
      lockTimeout: number;
      json?: boolean;
      insecure?: boolean;
      verbose?: boolean;
    }) => {
      try {
        const [{ apply }, render] = await Promise.all([import("./commands/apply.js"), import("./plan/render.js")]);
        const r = await apply({
          file: o.file,
          cluster: o.cluster,
          allowDestructive: !!o.allowDestructive,
          allowDataLoss: !!o.allowDataLoss,
          lockTimeoutMs: o.lockTimeout * 1000,
          insecure: o.insecure,
          log: err,
          trace: o.verbose ? err : undefined,
          onPlan: (p) => {
            if (!o.json) out(render.renderText(p));
          },
        });
        if (o.json) {
          out(JSON.stringify({ ...render.planJson(r.plan), applied: r.clusters }, null, 2));
        } else if (r.clusters.some((c) => c.status === "applied")) {
          const n = r.clusters.reduce((s, c) => s + c.changes, 0);
          out(`Apply complete: ${n} change${n === 1 ? "" : "s"} made; every cluster matches the file.`);
        }
        process.exit(0);
      } catch (e) {
        fail(e, !!o.json);
      }
    },
  );

program.parseAsync(process.argv).catch((e: unknown) => fail(e, false));
