// The command line: commander wiring, output and exit codes. The only place that prints final
// results or calls process.exit (early-signals.ts aside, for a second signal before this loads).
// Loaded by cli.ts, the entry. Commands are imported lazily so `topo --help` starts fast.

import { existsSync } from "node:fs";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { BUG_HINT, ConfigError, errorJson, formatProblem, InterruptedError, TopoError } from "./errors.js";
import { paintFor } from "./output.js";
import { Redactor } from "./redact.js";
import { holdsTypedPassword, learnTypedPassword, shownUrl } from "./config/url.js";
import { GRAPH_FORMATS } from "./plan/graph.js";
import { DEFAULT_PASSWORD_ENV } from "./core/naming.js";
import { DEFAULT_CHANNELS, type Plan } from "./model.js";
import { plural, shellPath, shown } from "./core/words.js";
import { setUpProcess } from "./process-setup.js";
import { stepsUnderWay, writesBegun } from "./broker/in-flight.js";
import { takeEarlySignals } from "./early-signals.js";
import { packageFile } from "./config/package-files.js";

setUpProcess();

/** Learns every password a command reads; everything printed goes through it. */
const redactor = new Redactor();
// A password typed into any argument is learnt before commander reads them: commander echoes an
// option it does not know with its value ("unknown option '--urll=sync=USER:PASSWORD@HOST'"), and
// without a scheme that value is no URL redactText recognises. A file's name is none: read as
// one, "-f deploy:rel-2026@eu.yaml" taught it the password "rel-2026", and output blanked it
// wherever it stood, the file's own name included ("deploy:***@eu.yaml is valid", --json's "file").
// A name of no file that is there is learnt all the same: "-f u:pw@host" is a URL given where the
// file belongs (refused below, before any command runs: refuseUrlForFile).
/** The options whose value is a file's name. */
const FILE_OPTIONS = new Set(["-f", "--file", "-o", "--output"]);
const argv = process.argv.slice(2);
argv.forEach((arg, i) => {
  if (!namesFile(arg, argv[i - 1]) || (!existsSync(fileNamed(arg)) && holdsTypedPassword(fileNamed(arg)))) learnTypedPassword(arg, redactor);
});
const redact = (s: string) => redactor.text(s);
const out = (s: string) => process.stdout.write(`${redact(s)}\n`);
const err = (s: string) => process.stderr.write(`${redact(s)}\n`);
/** JSON on stdout: its strings are masked before it is serialised, so it stays JSON (redact.ts). */
const json = (v: unknown, indent?: number) => JSON.stringify(redactor.value(v), null, indent);

/**
 * Whether a command-line argument names a file: the value of -f/--file or -o/--output (after it,
 * or after "="), or a path that is there (a plan file given to apply or show).
 */
function namesFile(arg: string, before: string | undefined): boolean {
  if (before !== undefined && FILE_OPTIONS.has(before)) return true;
  if (/^--(?:file|output)=/.test(arg)) return true;
  return existsSync(arg);
}

/** The file's name an argument gives: after "--file=" or "--output=", else the argument. */
function fileNamed(arg: string): string {
  return arg.replace(/^--(?:file|output)=/, "");
}

/**
 * A file's name given on the command line (-f, -o, a saved plan's) that names no file there and has
 * the form <user>:<password>@<host>: a broker's URL, typed without its scheme where a file belongs.
 * Taken for a name, it was printed whole: "u:pw@host:1:1: no such file" (-f), "wrote u:pw@host"
 * (-o, which also wrote a file of that name), "cannot read the saved plan u:pw@host" (apply, show);
 * a password of fewer than four characters is masked only in a URL with its scheme. Refused before
 * the command runs, shown as a URL is (user:***).
 */
function refuseUrlForFile(what: string, value: string | undefined, writes: boolean): void {
  if (value === undefined || existsSync(value) || !holdsTypedPassword(value)) return;
  learnTypedPassword(value, redactor);
  const url = `it has the form <user>:<password>@<host> of a broker's URL (${shownUrl(value)})`;
  const inFile = "a broker's URL goes in the topology file, as clusters.<name>.url (amqp://<user>:<password>@<host>:5672/<vhost>), its password from a variable (${RABBITMQ_PASSWORD})";
  if (writes) {
    throw new TopoError(`${what} was given no file's name: ${url}, and topo writes no file of that name, which its messages would print, the password with it`, [
      `give ${what} a file's name without ":" before "@"`,
      inFile,
    ]);
  }
  throw new TopoError(`${what} names no file in ${process.cwd()}, and ${url}`, [`${what} takes ${what === "-f" ? "the topology file" : "a plan saved with topo plan -o FILE"}; ${inFile}`]);
}

/**
 * Whether NODE_DEBUG turns on Node's debug log of any of `sections`, read as Node reads it: a
 * comma-separated list whose `*` matches anything, each entry the whole name, in any case
 * (`http*`, `n*` and `*` turn on http and net alike).
 */
function nodeDebugs(value: string | undefined, sections: string[]): boolean {
  if (!value) return false;
  const entries = value.split(",").map((e) => new RegExp(`^${e.replace(/[|\\{}()[\]^$+?.]/g, "\\$&").replace(/\*/g, ".*")}$`, "i"));
  return sections.some((s) => entries.some((e) => e.test(s)));
}

// Node's own debug log writes each request's headers, the management API's Authorization (user
// and password, in base64) among them, past topo's masking (advm). Said before anything runs.
if (nodeDebugs(process.env.NODE_DEBUG, ["http", "https", "http2", "net", "tls"])) {
  err(`warning: NODE_DEBUG=${process.env.NODE_DEBUG} makes Node print what topo sends, the management API's Authorization header (user and password in base64) included, which topo cannot mask: unset it, or keep that output as you keep the password`);
}
const outJson = (v: unknown, indent = 2) => process.stdout.write(`${json(v, indent)}\n`);
/** Colour for stdout / stderr: only on a terminal, never with NO_COLOR or --no-color. */
const paintOut = () => paintFor(process.stdout, program.opts<{ color: boolean }>().color);
const paintErr = () => paintFor(process.stderr, program.opts<{ color: boolean }>().color);
const { version } = packageFile<{ version: string }>("package.json");


/**
 * A reader that stops early (`topo graph | head`) is not an error, and it must not stop what the
 * command is doing either: an apply that exited there would leave its changes half made, and a
 * `plan --detailed-exitcode` that exited 0 would tell a drift check there are none. What is
 * written after the reader has gone is dropped; the command runs to its end and exits with its
 * own code.
 *
 * The first failure to write stdout (EPIPE included) is judged at exit, below.
 */
let stdoutFailed: NodeJS.ErrnoException | undefined;
process.stdout.on("error", (e: NodeJS.ErrnoException) => void (stdoutFailed ??= e));
// stderr has nowhere to say that it failed.
process.stderr.on("error", () => undefined);

/**
 * A stdout that could not be written (a full disk: `topo plan --json > plan.json`) fails the
 * command, whatever it was about to exit with: `plan --detailed-exitcode` exited 2 over a plan that
 * was never written. Judged at exit, since the command exits right after its last write, before
 * the stream reports the failure.
 */
process.on("exit", () => {
  // The error event comes a tick after the write; a command that exits right after writing is
  // judged on the stream's state, where the write's failure is already set.
  const e = stdoutFailed ?? (process.stdout.errored as NodeJS.ErrnoException | null);
  if (!e || e.code === "EPIPE" || e.code === "ERR_STREAM_DESTROYED") return;
  process.stderr.write(`Error: could not write to stdout: ${e.message}; what was printed is incomplete\n`);
  if (process.exitCode !== 130) process.exitCode = 1;
});

/**
 * Ends the process with `code` once what was written to stdout and stderr has been handed to
 * them. Node writes to a pipe (a CI job's log, `| tee`, `| less`) asynchronously, and
 * process.exit() drops whatever is still queued: piped, a validate with a problem in each of
 * 10,000 services lost up to two thirds of its problems, and a large plan would lose its end
 * under an exit code that says it was shown. A reader that has gone (`| head`) ends the wait
 * too (its write fails at once). Once ending, nothing more is printed (see fail).
 */
let ending = false;
function exit(code: number): void {
  ending = true;
  process.exitCode = code;
  const queued = [process.stdout, process.stderr].filter((s) => s.writableLength > 0 && !s.destroyed);
  if (queued.length === 0) process.exit(code);
  let left = queued.length;
  // Callbacks of one stream run in the order of its writes: an empty write's comes after all of them.
  for (const s of queued) s.write("", () => --left === 0 && process.exit(code));
}

/**
 * Lets a Ctrl-C or SIGTERM that came while a command worked without a pause (validate of 100,000
 * services, graph, route) be answered before its answer is written: Node hands a signal to its
 * listener only from the event loop, and such a command wrote its answer and ended with exit 0,
 * its loop never polled, so a cancelled deploy step reported success. A timer's turn, then an
 * immediate's: one immediate alone was not always enough (measured). False when a signal stopped
 * the command (onStopSignal has answered it, 130).
 */
async function unstopped(): Promise<boolean> {
  await new Promise((r) => setTimeout(r, 0));
  await new Promise((r) => setImmediate(r));
  return !ending;
}

/** A repeatable option; no commander default, or help would print "(default: [])". */
const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

/** The longest --lock-timeout: a day (Node's timers hold no more than 24.8 days anyway). */
const MAX_WAIT_SECONDS = 86_400;

/**
 * Seconds written in decimal, as the file's numbers are: Number() alone took "" for 0, "0x10"
 * for 16 and "1e9" for 31 years.
 */
function seconds(v: string): number {
  const n = /^\d+(\.\d+)?$/.test(v) ? Number(v) : Number.NaN;
  if (!(n >= 0 && n <= MAX_WAIT_SECONDS)) throw new InvalidArgumentError(`must be a number of seconds from 0 to ${MAX_WAIT_SECONDS}, written in decimal (e.g. 60 or 2.5)`);
  return n;
}

/** A count of 1 to 2047 (AMQP's own bound on a connection's channels is 65,535; RabbitMQ's default is 2047), in decimal digits. */
function channels(v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!(n >= 1 && n <= 2047)) throw new InvalidArgumentError("must be a whole number from 1 to 2047, written in decimal digits");
  return n;
}

function fail(e: unknown, asJson: boolean): void {
  // A failure while the process waits for its output to be written (an AMQP connection's error
  // event, a second signal) would print after the words that end it.
  if (ending) return;
  const paint = paintErr();
  if (e instanceof ConfigError) {
    for (const p of e.problems) err(formatProblem(p));
    for (const w of e.warnings) err(`warning: ${formatProblem(w)}`);
    err(paint("error", `${e.problems.length} problem${e.problems.length === 1 ? "" : "s"} found; nothing was sent to any broker.`));
  } else if (e instanceof TopoError && e.code === "interrupted") {
    // Not an error the user has to fix: they asked for it.
    err(e.message);
  } else if (e instanceof TopoError) {
    err(`${paint("error", "Error:")} ${e.message}`);
    for (const h of e.hints) err(`  hint: ${h}`);
  } else {
    // Not one of ours: still no stack trace for users, but enough to report it.
    err(`${paint("error", "Error:")} ${e instanceof Error ? e.message : String(e)}`);
    err(`  hint: ${BUG_HINT}`);
  }
  if (asJson) outJson(errorJson(e, redact), 0);
  exit(e instanceof TopoError ? e.exitCode : 1);
}

const program = new Command();
program
  .name("topo")
  .description("Provision RabbitMQ topology for Celery-style services from one declarative YAML file.")
  .version(version)
  .option("--no-color", "no colour in the output (also: NO_COLOR=1); colour is only ever used on a terminal")
  .showHelpAfterError()
  // A wrong command line is thrown, not exited on, so --json can say it as JSON (code usage).
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(redact(s)) })
  .hook("preAction", (_program, command) => {
    const o = command.opts<{ file?: string; output?: string }>();
    if (command.getOptionValueSource("file") === "cli") refuseUrlForFile("-f", o.file, false);
    refuseUrlForFile("-o", o.output, true);
    if (command.name() === "apply" || command.name() === "show") refuseUrlForFile(`${command.name()}'s PLANFILE`, command.processedArgs[0] as string | undefined, false);
  });

const fileOption = () => new Option("-f, --file <file>", "topology file").default("topology.yaml");

program
  .command("validate")
  .description("check the file against the schema and its cross-references; no network")
  .addOption(fileOption())
  .option("--json", "print the result as JSON")
  .action(async (o: { file: string; json?: boolean }) => {
    try {
      const { validate } = await import("./commands/validate.js");
      const r = validate(o.file, undefined, redactor);
      if (!(await unstopped())) return;
      for (const w of r.warnings) err(`warning: ${w}`);
      if (o.json) outJson({ valid: true, ...r });
      else out(`${r.file} is valid: ${plural(r.services, "service")} on ${r.clusters.map((c) => `${c.name} (${plural(c.queues, "queue")})`).join(", ")}.`);
    } catch (e) {
      fail(e, !!o.json);
    }
  });

const PLAN_FORMATS = ["text", "json", "markdown"] as const;
type PlanFormat = (typeof PLAN_FORMATS)[number];
const formatOption = () => new Option("--format <format>", "how to print the plan (markdown: for a pull-request comment)").choices([...PLAN_FORMATS]).default("text");
/** --json stays an alias of --format json. */
const formatOf = (o: { format: PlanFormat; json?: boolean }): PlanFormat => (o.json ? "json" : o.format);
/** --json beside another --format asks for two outputs: refused, rather than one of them printed unsaid (JSON in a pull-request comment). */
function refuseTwoFormats(o: { format: PlanFormat; json?: boolean }, cmd: Command): void {
  if (!o.json || cmd.getOptionValueSource("format") !== "cli" || o.format === "json") return;
  throw new TopoError(`--json is --format json, and --format ${o.format} asks for another output: give one of them`, [`topo ${cmd.name()} ... --format ${o.format}, or --json alone`]);
}

program
  .command("plan")
  .description("show what apply would change on each cluster")
  .addOption(fileOption())
  .option("--cluster <name>", "only this cluster; repeat for more", collect)
  .addOption(formatOption())
  .option("--json", "print the plan as JSON (--format json)")
  .option("-o, --output <planfile>", "also save the plan to this file, for topo apply PLANFILE (it holds no password)")
  .option("--detailed-exitcode", "exit 0 when there are no changes, 2 when there are, 1 on error")
  .option("--insecure", "do not verify TLS certificates (tests only)")
  .action(async (o: { file: string; cluster?: string[]; format: PlanFormat; json?: boolean; output?: string; detailedExitcode?: boolean; insecure?: boolean }, cmd: Command) => {
    const format = formatOf(o);
    try {
      refuseTwoFormats(o, cmd);
      const opts = { file: o.file, cluster: o.cluster, insecure: o.insecure, redactor, warn: (w: string) => err(`warning: ${w}`), log: err };
      // A plain plan loads neither saved plans nor apply.
      const output = o.output;
      const p =
        output === undefined
          ? await (await import("./commands/plan.js")).plan(opts)
          : (await (await import("./commands/saved.js")).planAndSave({ ...opts, output, version })).plan;
      process.stdout.write(`${await renderPlan(p, format)}\n`);
      if (output !== undefined) err(`wrote ${shown(output)}: apply exactly this plan with topo apply ${shellPath(output)}`);
      const { isEmpty } = await import("./plan/diff.js");
      exit(o.detailedExitcode && !isEmpty(p) ? 2 : 0);
    } catch (e) {
      fail(e, format === "json");
    }
  });

/** A plan as the format asks, masked (JSON through its values, so it stays JSON). */
async function renderPlan(p: Plan, format: PlanFormat, extra: Record<string, unknown> = {}, source?: string): Promise<string> {
  const render = await import("./plan/render.js");
  switch (format) {
    case "json":
      return json({ ...extra, ...render.planJson(p) }, 2);
    case "markdown":
      return redact((await import("./plan/markdown.js")).renderMarkdown(p, { source }));
    case "text":
      return redact(render.renderText(p, paintOut()));
  }
}

program
  .command("show")
  .description("print a plan saved with topo plan -o (no network)")
  .argument("<planfile>", "a plan written by topo plan -o")
  .addOption(formatOption())
  .option("--json", "print the plan as JSON (--format json)")
  .action(async (planFile: string, o: { format: PlanFormat; json?: boolean }, cmd: Command) => {
    const format = formatOf(o);
    try {
      refuseTwoFormats(o, cmd);
      const { show } = await import("./commands/saved.js");
      const s = show(planFile, version);
      if (!(await unstopped())) return;
      if (format === "text") out(`${s.source}\n`);
      process.stdout.write(`${await renderPlan(s.plan, format, { saved: s.saved }, s.source)}\n`);
    } catch (e) {
      fail(e, format === "json");
    }
  });

program
  .command("apply")
  .description("make each cluster match the file, then read it back to confirm; or apply a saved plan exactly")
  .argument("[planfile]", "a plan saved with topo plan -o: apply exactly it, or refuse (stale_plan) when the broker or the file changed since")
  .addOption(fileOption())
  .option("--cluster <name>", "only this cluster; repeat for more", collect)
  .option("--allow-destructive", "allow replacing and deleting objects (never drops the messages a queue holds by itself)")
  .option("--allow-data-loss", "allow deleting or replacing queues that hold messages, losing them")
  .option("--allow-unmanaged-deletes", "allow a delete to take bindings topo does not manage with it, and a replace those it cannot put back or re-create exactly, or whose routing an exchange's new type changes (plan names them)")
  .addOption(new Option("--lock-timeout <seconds>", "how long to wait for another apply on the same cluster").argParser(seconds).default(60))
  .addOption(
    new Option("--parallelism <channels>", "AMQP channels each cluster's writes run over at once (fewer for a user or broker that limits channels; always within the broker's channel_max)")
      .argParser(channels)
      .default(DEFAULT_CHANNELS),
  )
  .option("--json", "print the plan and the outcome as JSON")
  .option("--insecure", "do not verify TLS certificates (tests only)")
  .option("--verbose", "print how long each step takes, on stderr")
  .action(
    async (planFile: string | undefined, o: {
      file: string;
      cluster?: string[];
      allowDestructive?: boolean;
      allowDataLoss?: boolean;
      allowUnmanagedDeletes?: boolean;
      lockTimeout: number;
      parallelism: number;
      json?: boolean;
      insecure?: boolean;
      verbose?: boolean;
    }, cmd: Command) => {
      const { Progress, STALL_TICK_MS } = await import("./output.js");
      const progress = new Progress((s) => process.stderr.write(redact(s)), process.stderr.isTTY === true);
      setInterval(progress.tick, STALL_TICK_MS).unref();
      // Ctrl-C or SIGTERM: apply stops starting work, closes its connections (releasing the
      // locks) and throws InterruptedError; a second signal does not wait for that.
      const stop = new AbortController();
      /** A second signal that waits for a step only this process can finish, once said. */
      let waitedFor: string[] | undefined;
      const onSignal = (signal: NodeJS.Signals) => {
        if (stop.signal.aborted) {
          // A third one while the last words wait for a reader that does not read: out at once.
          if (ending) process.exit(130);
          // An exchange being re-created with its bindings: users' ones are known to this apply
          // alone, so a second signal (a habitual double Ctrl-C) waits for that step, saying so.
          const atRisk = stepsUnderWay();
          if (atRisk.length && waitedFor === undefined) {
            waitedFor = atRisk;
            progress.log(
              `${signal} again: waiting for ${plural(atRisk.length, "binding")} of the exchanges (or queues) being replaced to be put back (users' ones among them, which no later plan knows); ${signal} once more stops at once and may lose them`,
            );
            return;
          }
          const lost = waitedFor ?? atRisk;
          const shown = lost.length > 20 ? [...lost.slice(0, 20), `and ${lost.length - 20} more`] : lost;
          const losing = lost.length ? ` ${plural(lost.length, "binding")} were being put back and may be lost, and no later plan knows those topo does not manage: make them again by hand where they are missing: ${shown.join("; ")}.` : "";
          // Still one answer, as JSON under --json: a pipeline must not be left with an empty stdout.
          progress.end();
          // Before the first write nothing changed, and a saved plan still holds.
          if (!writesBegun()) {
            return fail(new InterruptedError(`${signal} again: stopped at once, before any write; nothing was changed${planFile === undefined ? "" : `: the saved plan still holds, and topo apply ${shellPath(planFile)} applies it`}.`), !!o.json);
          }
          return fail(
            new InterruptedError(
              `${signal} again: stopped at once, without waiting for the changes in flight, some of which may have been made; ${planFile === undefined ? "topo plan shows what is left, and topo apply finishes it" : "the saved plan no longer matches the brokers: topo plan -o FILE shows what is left, and topo apply FILE finishes it"}.${losing}`,
            ),
            !!o.json,
          );
        }
        progress.log(`${signal}: stopping; changes in flight finish or fail, nothing new starts`);
        stop.abort();
      };
      applyHandlesSignals = true;
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      try {
        const [{ apply }, { applySaved }, render] = await Promise.all([import("./commands/apply.js"), import("./commands/saved.js"), import("./plan/render.js")]);
        if (planFile !== undefined && (o.cluster || cmd.getOptionValueSource("file") === "cli")) {
          throw new TopoError("a saved plan names its topology file and its clusters: leave out -f and --cluster with topo apply PLANFILE");
        }
        /** Whether the plan shown before the writes had changes: the report then says how many were made (perhaps none). */
        let planned = false;
        const run = planFile === undefined ? apply : (x: Parameters<typeof apply>[0]) => applySaved({ ...x, planFile, version });
        const r = await run({
          file: o.file,
          redactor,
          warn: (w) => err(`warning: ${w}`),
          cluster: o.cluster,
          allowDestructive: !!o.allowDestructive,
          allowDataLoss: !!o.allowDataLoss,
          allowUnmanagedDeletes: !!o.allowUnmanagedDeletes,
          lockTimeoutMs: o.lockTimeout * 1000,
          concurrency: o.parallelism,
          insecure: o.insecure,
          log: progress.log,
          trace: o.verbose ? progress.log : undefined,
          progress: progress.update,
          busy: progress.busy,
          ended: progress.ended,
          signal: stop.signal,
          onPlan: async (p) => {
            planned = p.clusters.some((c) => c.actions.length > 0);
            // Written before anything else is said: stdout to a pipe is written in the
            // background, so a plan of thousands of lines read slowly (a deploy job's log) had
            // apply's progress, and its outcome, in the middle of it.
            if (!o.json) await new Promise<void>((done) => process.stdout.write(`${redact(render.renderText(p, paintOut()))}\n`, () => done()));
          },
        });
        progress.end();
        if (o.json) {
          outJson({ ...render.planJson(r.plan), applied: r.clusters });
        } else if (planned) {
          const n = r.clusters.reduce((s, c) => s + c.changes, 0);
          // Drift topo cannot repair (plan --detailed-exitcode counts it) leaves a cluster unlike the file.
          const degraded = r.clusters.reduce((s, c) => s + c.degraded.length, 0);
          // With --cluster, the clusters left out were not read: "every cluster" would claim them too.
          const read = r.clusters.map((c) => c.name);
          const matches = r.unread.length === 0 ? "every cluster matches the file" : `${read.length === 1 ? "cluster" : "clusters"} ${read.join(", ")} ${read.length === 1 ? "matches" : "match"} the file`;
          // What apply could not read back it does not say matches.
          const notCompared = [...new Set(r.clusters.flatMap((c) => c.notCompared))];
          const unverified = notCompared.length ? ` in what topo could read (not compared: ${notCompared.join(", ")}; see "! warning" above)` : "";
          const state = degraded ? `${degraded} degraded (topo cannot repair ${degraded === 1 ? "it" : "them"}: see "! degraded" above)` : `${matches}${unverified}`;
          const unread = r.unread.length ? `; ${r.unread.length === 1 ? "cluster" : "clusters"} ${r.unread.join(", ")} ${r.unread.length === 1 ? "was" : "were"} not read` : "";
          out(`Apply complete: ${n} change${n === 1 ? "" : "s"} made; ${state}${unread}.`);
        }
        exit(0);
      } catch (e) {
        progress.end();
        // The hints' commands, as this apply was run: its file and clusters (a saved plan's are
        // rewritten by applySaved).
        if (planFile === undefined) (await import("./commands/apply.js")).hintsForInvocation(e, o.file, o.cluster);
        fail(e, !!o.json);
      }
    },
  );

program
  .command("route")
  .description("say where a task name lands: cluster, exchange, routing key and the queues that get it")
  .argument("<task>", "a task name, <service>.<sync|async>.<task>")
  .addOption(fileOption())
  .option("--live", "also check against the broker's actual bindings")
  .option("--json", "print the route as JSON")
  .option("--insecure", "do not verify TLS certificates (tests only)")
  .action(async (task: string, o: { file: string; live?: boolean; json?: boolean; insecure?: boolean }) => {
    try {
      const { route, routeJson, routeText } = await import("./commands/route.js");
      const r = await route({ file: o.file, task, live: o.live, insecure: o.insecure, redactor, warn: (w) => err(`warning: ${w}`), log: err });
      if (!(await unstopped())) return;
      if (o.json) outJson(routeJson(r));
      else out(routeText(r));
    } catch (e) {
      // "topo plan shows what is missing" after route -f other.yaml planned topology.yaml.
      (await import("./commands/apply.js")).hintsForInvocation(e, o.file, undefined);
      fail(e, !!o.json);
    }
  });

const exportCmd = program.command("export").description("write the file's desired state in another tool's format");

exportCmd
  .command("definitions")
  .description("RabbitMQ definitions JSON of a cluster's desired state (rabbitmqctl import_definitions, POST /api/definitions/{vhost})")
  .addOption(fileOption())
  .option("--cluster <name>", "the cluster to export (required when queues are on more than one)")
  .option("-o, --output <file>", "write to this file instead of stdout")
  .action(async (o: { file: string; cluster?: string; output?: string }) => {
    try {
      const { exportDefinitions } = await import("./commands/export-definitions.js");
      const d = exportDefinitions({ file: o.file, cluster: o.cluster, redactor });
      if (!(await unstopped())) return;
      if (o.output !== undefined) (await import("./files/write-file.js")).refuseOverTopology(o.output, o.file, "the definitions", `${d.cluster}.json`);
      for (const w of d.warnings) err(`warning: ${w}`);
      // A salted SHA-256 of a password is guessed from at billions a second: printed, it went
      // into a deploy job's log, which every reader of the job can see, without a word.
      if (d.secret && o.output === undefined) {
        err(`warning: the definitions hold the password hash of each user of the file's users: section, printed on stdout: a hash is guessed from offline, so keep what stdout goes to as you keep the passwords, or write them with -o FILE (readable by its owner alone)`);
      }
      // Users' password hashes are secrets: a new file of them is the owner's alone, as a saved plan is.
      await emit(d.text, o.output, d.secret ? 0o600 : 0o644);
    } catch (e) {
      fail(e, false);
    }
  });

/** Write a generated file to -o FILE, or to stdout. */
async function emit(text: string, file: string | undefined, mode = 0o644): Promise<void> {
  if (file === undefined) {
    process.stdout.write(text);
    return;
  }
  const { writeWhole } = await import("./files/write-file.js");
  writeWhole(file, text, true, mode);
  err(`wrote ${file}`);
}

program
  .command("graph")
  .description("draw the clusters, exchanges, queues and bindings of the file (Mermaid or Graphviz DOT)")
  .addOption(fileOption())
  .addOption(new Option("--format <format>", "diagram language").choices([...GRAPH_FORMATS]).default("mermaid"))
  .option("--cluster <name>", "only this cluster")
  .action(async (o: { file: string; format: "mermaid" | "dot"; cluster?: string }) => {
    try {
      const { graph } = await import("./commands/graph.js");
      const text = graph({ file: o.file, format: o.format, cluster: o.cluster, redactor, warn: (w) => err(`warning: ${w}`) });
      if (!(await unstopped())) return;
      process.stdout.write(text);
    } catch (e) {
      fail(e, false);
    }
  });

// The `export` command is created above, with `export definitions`.
exportCmd
  .command("celery")
  .description("write a Celery 5 config module (queues, routes, result backend) for one cluster")
  .addOption(fileOption())
  .option("--cluster <name>", "the cluster whose broker the Celery app connects to (required when queues are on more than one)")
  .option("-o, --output <file>", "write the module here (default: stdout)")
  .option("--broker-env <name>", "environment variable the module reads the broker URL from (default: TOPO_BROKER_URL_<CLUSTER>)")
  .option("--default-queue <queue>", "queue for task names that are not <service>.<kind>.<task> (default: the cluster's first queue)")
  .action(async (o: { file: string; cluster?: string; output?: string; brokerEnv?: string; defaultQueue?: string }) => {
    try {
      const { exportCelery } = await import("./commands/export-celery.js");
      const r = exportCelery({ file: o.file, cluster: o.cluster, output: o.output, brokerEnv: o.brokerEnv, defaultQueue: o.defaultQueue, redactor });
      if (!(await unstopped())) return;
      for (const w of r.warnings) err(`warning: ${w}`);
      if (r.written === undefined) out(r.text.replace(/\n$/, ""));
      else err(`wrote ${r.written}: cluster ${r.cluster}, ${r.queues.length} queue${r.queues.length === 1 ? "" : "s"}, default queue ${r.defaultQueue}; the broker URL is read from $${r.brokerEnv}`);
    } catch (e) {
      fail(e, false);
    }
  });

{
  // topo import: a broker's topology → a topology file (stdout or -o).
  program
    .command("import")
    .description("read brokers and write the topology file that describes them (stdout, or -o FILE)")
    .addOption(fileOption())
    .option("--cluster <name>", "read this cluster of the file; repeat for more (default: every cluster of the file)", collect)
    .option("--url <[name=]url>", "read this vhost instead, e.g. sync=amqp://USER@HOST:5672/VHOST; repeat for more clusters", collect)
    .option("--management <[name=]url>", "management API of the --url clusters (default http://<host>:15672)", collect)
    .option("--password-env <var>", "the variable that holds the --url password; the file refers to it as ${VAR}", DEFAULT_PASSWORD_ENV)
    .option("--prefix <prefix>", "service name prefix, topo's namespace (default: the file's, else mp)")
    .option("-o, --output <file>", "write the file here instead of stdout")
    .option("--force", "replace the -o file if it exists")
    .option("--insecure", "do not verify TLS certificates (tests only)")
    .action(
      async (
        o: { file: string; cluster?: string[]; url?: string[]; management?: string[]; passwordEnv: string; prefix?: string; output?: string; force?: boolean; insecure?: boolean },
        cmd: Command,
      ) => {
        try {
          const { importTopology } = await import("./commands/import.js");
          const r = await importTopology({
            redactor,
            file: o.file,
            fileGiven: cmd.getOptionValueSource("file") === "cli",
            clusters: o.cluster,
            urls: o.url,
            managements: o.management,
            passwordEnv: o.passwordEnv,
            prefix: o.prefix,
            output: o.output,
            force: o.force,
            insecure: o.insecure,
            log: err,
          });
          for (const n of r.notices) err(`note: ${n}`);
          // Written as is, not through out(): masking would garble ${VAR:-default} references,
          // and the text holds no password by construction (commands/import.ts).
          if (!r.output) await new Promise<void>((done) => process.stdout.write(r.text, () => done()));
          const s = (n: number, w: string) => `${n} ${w}${n === 1 ? "" : "s"}`;
          err(
            `Imported ${s(r.services, "service")} (${s(r.queues, "queue")}) from ${r.clusters.length === 1 ? "cluster" : "clusters"} ${r.clusters.join(", ")}${r.output ? ` into ${r.output}` : ""}. ` +
              (r.closed.length
                ? `topo plan on it fails at its login to ${r.closed.length === 1 ? "cluster" : "clusters"} ${r.closed.join(", ")}, whose vhost accepts no connections (see the note), and then shows ${r.changes ? s(r.changes, "change") : "no changes"}`
                : r.changes
                  ? `topo plan on it shows ${s(r.changes, "change")} the file cannot avoid`
                  : "topo plan on it shows no changes") +
              (r.degraded ? `, and ${r.degraded} degraded (plan --detailed-exitcode exits 2 while ${r.degraded === 1 ? "it lasts" : "they last"})` : "") +
              (r.kept ? `; ${s(r.kept, "object")} it cannot describe ${r.kept === 1 ? "is" : "are"} left alone` : "") +
              (r.changes || r.kept || r.degraded ? " (listed at its top)." : "."),
          );
          exit(0);
        } catch (e) {
          fail(e, false);
        }
      },
    );
}

/** A command line asking for JSON, as the commands read it (--json, --format json). */
function asksForJson(argv: readonly string[]): boolean {
  return argv.some((a, i) => a === "--json" || a === "--format=json" || (a === "--format" && argv[i + 1] === "json"));
}

// Ctrl-C or SIGTERM during any other command (a plan waiting on a broker that does not answer):
// stopped at once, with one answer as every failure has, as JSON under --json; it has written
// nothing (only apply writes to brokers, and -o files are written whole at the end). apply
// handles its own signals: it stops starting work and says how far each cluster got.
let applyHandlesSignals = false;
/** Signals met while the answer was being written out. */
let whileEnding = 0;
const onStopSignal = (signal: NodeJS.Signals) => {
  if (applyHandlesSignals) return;
  // The answer is whole and being written to a slow reader: cut, --json would be half a
  // document. Finished instead; a second signal (a reader that never reads) stops at once.
  if (ending && whileEnding++ === 0) return;
  if (ending) process.exit(130);
  fail(new InterruptedError(`${signal}: stopped before it finished; nothing was written`), asksForJson(process.argv));
};
process.on("SIGINT", onStopSignal);
process.on("SIGTERM", onStopSignal);
// One that came while this module loaded, before any command began.
const early = takeEarlySignals();
if (early) onStopSignal(early);

// An error no command caught (a library's callback that throws, a promise nobody awaits) ends the
// process as Node would, with exit code 1, but through fail(): masked like every other output, as
// JSON when JSON was asked for, and without a stack trace whose messages no redactor has seen.
process.on("uncaughtException", (e) => fail(e, asksForJson(process.argv)));
process.on("unhandledRejection", (e) => fail(e, asksForJson(process.argv)));

// The event loop emptied while the command still awaited something: an answer that can no longer
// come (amqplib drops a basic.get whose message it cannot decode, and its connection with it).
// Node would end the process with exit code 0, a deploy pipeline's "done", with the work half-way.
let settled = false;
process.on("beforeExit", () => {
  if (settled || ending) return;
  settled = true;
  fail(new Error("topo stopped part-way: it was waiting for an answer that can no longer come (its connection or a request ended without one); what it did before is not confirmed: run topo plan to see the brokers' state"), asksForJson(process.argv));
});

// Interrupted already: no command starts.
if (!early) program.parseAsync(process.argv).then(
  () => (settled = true),
  (e: unknown) => {
    settled = true;
    if (e instanceof CommanderError) {
      // Help and --version end here too, successfully; commander has printed its words already.
      if (e.exitCode === 0) return exit(0);
      if (asksForJson(process.argv)) outJson({ error: { code: "usage", message: e.message.replace(/^error: /, "") } }, 0);
      return exit(1);
    }
    // A refusal of the command line before its command ran (refuseUrlForFile).
    fail(e, asksForJson(process.argv));
  },
);
