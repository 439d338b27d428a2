// BENCHMARKS.md from the results bench/run.mjs keeps: medians, the targets of issue 14 with their
// verdicts, and every round's own figures.

export const median = (xs) => {
  const s = xs.filter((x) => x !== undefined).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (x, d = 0) => (x === undefined || Number.isNaN(x) ? "–" : x.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d }));
const ratio = (a, b) => (a === undefined || b === undefined ? "–" : `${(a / b).toFixed(2)}×`);
const perObject = (ms, objects) => (ms === undefined || !objects ? undefined : (ms * 1000) / objects);

const FIELDS = ["wallMs", "cpuMs", "brokerCpuMs", "maxRssMB", "httpRequests", "httpWrites", "amqpRpcs", "objects"];
/** What is not topo: the two baselines, and the read floor (the broker answering alone). */
const BASELINES = ["(a) definitions import", "(b) sequential declares", "read floor"];

/** Per operation, the median of each figure over the rounds that have it. */
export function medians(size) {
  const out = {};
  for (const round of size.rounds) {
    for (const op of Object.keys(round.ops)) out[op] ??= { runs: 0 };
  }
  for (const [op, m] of Object.entries(out)) {
    const rs = size.rounds.map((r) => r.ops[op]).filter(Boolean);
    m.runs = rs.length;
    for (const f of FIELDS) m[f] = median(rs.map((r) => r[f]));
    m.cpuPerObjectUs = median(rs.map((r) => perObject(r.cpuMs, r.objects)));
    m.brokerPerObjectUs = median(rs.map((r) => perObject(r.brokerCpuMs, r.objects)));
  }
  return out;
}

export function report(results) {
  const lines = [];
  const { machine, conditions } = results;
  const sizes = Object.fromEntries(Object.entries(results.sizes).map(([n, s]) => [n, medians(s)]));
  lines.push("# Benchmarks", "");
  lines.push(
    "Written by `npm run bench` (bench/run.mjs, bench/report.mjs); do not edit by hand. Every round's own figures are kept in",
    `${(results.files ?? [results.file]).map((f) => `\`${f}\``).join(", ")}; \`node bench/run.mjs --report FILE...\` writes this page again from them. Reproduce with:`,
    "",
    "```sh",
    "npm run bench                                   # BENCH_SIZES=100,1000,5000, 3 rounds each",
    "BENCH_SIZES=100,1000,5000,25000 npm run bench   # and 25,000 services, 3 rounds (35 to 60 minutes more; 25000:1 for one)",
    "```",
    "",
  );
  const machineText = (m) => `${m.cpus} × ${m.cpuModel}, ${fmt(m.memGiB, 0)} GiB, Node ${m.node}, RabbitMQ ${m.rabbit}`;
  const load = (c) => `load average ${c.loadAverageAtStart.map((x) => x.toFixed(2)).join(", ")} at the start and ${(c.loadAverageAtEnd ?? []).map((x) => x.toFixed(2)).join(", ")} at the end; ${c.otherBeamProcesses} other Erlang nodes ran on the same 2 cores`;
  if ((results.runs ?? []).length > 1) {
    lines.push(
      "Runs (each size's figures come from the runs that list it; runs on other days or machines are not comparable in absolute terms, only in ratios):",
      "",
      ...results.runs.map((r) => `- \`${r.file}\`: N = ${r.sizes.join(", ")}; started ${r.startedAt}${r.commit ? ` on ${r.commit}` : ""}; ${machineText(r.machine)}; ${load(r.conditions)}.`),
      "",
      "Other engineers' tests share the machine, so figures move from round to round: compare ratios and medians.",
      "",
    );
  } else lines.push(
    `Machine: ${machineText(machine)} (the local broker, two vhosts as the two clusters). Run started ${results.startedAt}${results.commit ? ` on ${results.commit}` : ""}; ${load(conditions)} (other engineers' tests), so figures move from round to round: compare ratios and medians.`,
    "",
  );
  lines.push("## How the comparison is kept fair", "");
  lines.push(
    "- **The same end state, the same work.** N services = per cluster N topic exchanges, N queues and N bindings (the sync cluster also gets the mirroring policy): 6N objects. Every contender creates its own two vhosts, both at once, and their creation is timed: topo (`apply` from an empty broker), (a) one `POST /api/definitions/{vhost}` per cluster, (b) awaited declares over one channel per cluster (what a worker does).",
    "- **The same broker state at the start.** After each contender its vhosts are deleted, and the next waits until the broker has finished removing them: the vhosts are gone, `/api/overview`'s object totals are back to where they were when the benchmark started, and `beam.smp` uses less than a third of a core over a second. The raw figures record how long that took.",
    "- **An idle broker before every timed operation.** After an apply the broker goes on working for tens of seconds (statistics of every new queue, mirroring). Every timed operation, topo's and the baselines', first waits until `beam.smp` uses less than a third of a core over a second, or, on a broker whose rest is busier than that (the statistics of 50,000 queues), until its load stops falling; the raw figures record the wait. The read floor is timed before topo's plans in even rounds and after them in odd rounds.",
    "- **Alternating order.** The contenders run in one order in odd rounds and the reverse in even rounds. Figures are medians of the rounds; the raw figures of every round are below and in the results file.",
    "- **Whole processes.** topo runs in a process of its own (bench/worker.mjs, the library; `plan, no changes (CLI)` is `node dist/cli.js plan` itself, and `apply from empty (CLI)` is `node dist/cli.js apply`, printing its plan and progress to a pipe as a deploy job does, at up to 5,000 services; the worker sets up its process as the command line does), so wall time includes Node's start and loading topo; topo's CPU and peak RSS are that process's own. The topology file is JSON, as a script that generates one writes it; `plan, no changes (CLI, YAML file)` plans from the same document written as YAML, as people write it.",
    "- **The broker's own work.** Broker CPU is the `beam.smp` process's user+system time from `/proc/<pid>/stat` before and after each operation (the pid from `rabbitmqctl eval 'os:getpid().'`). It counts everything the broker did meanwhile, other engineers' tests included.",
    "- **The read floor** is the set of requests topo's read makes (the same paths, `disable_stats`, the same `columns`), both clusters at once, timed alone to the last byte, unparsed: the time the broker takes to describe the state, with nothing of topo's in it.",
    "",
  );
  for (const [n, r] of Object.entries(sizes)) {
    const a = r["(a) definitions import"]?.wallMs;
    const floor = r["read floor"]?.wallMs;
    lines.push(`## N = ${fmt(Number(n))} (${fmt(6 * Number(n))} objects)`, "");
    lines.push("| operation | runs | wall ms | topo CPU ms | topo CPU µs/object | broker CPU ms | broker CPU µs/object | peak RSS MB | HTTP requests | HTTP writes | AMQP methods | ÷ (a) import | ÷ read floor |");
    lines.push("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (const [op, m] of Object.entries(r)) {
      const base = BASELINES.includes(op);
      lines.push(
        `| ${op} | ${m.runs} | ${fmt(m.wallMs)} | ${fmt(m.cpuMs)} | ${fmt(m.cpuPerObjectUs)} | ${fmt(m.brokerCpuMs)} | ${fmt(m.brokerPerObjectUs)} | ${fmt(m.maxRssMB, 1)} | ${fmt(m.httpRequests)} | ${fmt(m.httpWrites)} | ${fmt(m.amqpRpcs)} | ${base ? "" : ratio(m.wallMs, a)} | ${op.startsWith("plan") ? ratio(m.wallMs, floor) : ""} |`,
      );
    }
    const imports = results.sizes[n].rounds.map((x) => x.ops["(a) definitions import"]).filter(Boolean);
    if (imports.some((i) => i.cliStartMs !== undefined)) {
      lines.push("", `(a) went through \`rabbitmqctl import_definitions\` at this size (over HTTP this broker refuses bodies over 10 MB and gives up on a request after 60 s); the command line's own start, measured alone, took ${fmt(median(imports.map((i) => i.cliStartMs)))} ms of that time.`);
    }
    const slowest = results.sizes[n].rounds.map((x) => x.ops["read floor"]?.slowestMs).filter(Boolean);
    if (slowest.length) {
      const kinds = Object.keys(slowest[0]);
      lines.push("", `Read floor, slowest answer of each kind (median): ${kinds.map((k) => `${k} ${fmt(median(slowest.map((s) => s[k])))} ms`).join(", ")}.`);
    }
    lines.push("");
  }
  lines.push(...targets(sizes, results.startup));
  lines.push(...raw(results));
  return lines.join("\n");
}

function targets(sizes, startup) {
  const lines = ["## Targets", "", "| target | measured | verdict |", "|---|---|---|"];
  const t = (name, measured, ok) => lines.push(`| ${name} | ${measured} | ${ok === undefined ? "not measured" : ok ? "met" : "**missed**"} |`);
  const r1 = sizes[1000];
  const r5 = sizes[5000];
  const r25 = sizes[25000];
  const all = Object.entries(sizes);
  if (r1) {
    const ap = r1["apply from empty"].wallMs;
    const im = r1["(a) definitions import"].wallMs;
    t("apply from empty at N = 1,000 ≤ 0.6× the parallel definitions import", `${fmt(ap)} ms vs ${fmt(im)} ms: ${ratio(ap, im)}`, ap / im <= 0.6);
  } else t("apply from empty at N = 1,000 ≤ 0.6× the parallel definitions import", "needs N = 1,000", undefined);
  const brokerPer = all.map(([n, r]) => [n, r["apply from empty"]?.brokerPerObjectUs, r["(a) definitions import"]?.brokerPerObjectUs]);
  t(
    "broker CPU per object created: topo ≤ the import",
    brokerPer.map(([n, a, b]) => `N=${fmt(Number(n))}: ${fmt(a)} µs vs ${fmt(b)} µs`).join("; "),
    brokerPer.some(([, a, b]) => a === undefined || b === undefined) ? undefined : brokerPer.every(([, a, b]) => a <= b),
  );
  const cpuPer = all.map(([n, r]) => [n, r["apply from empty"]?.cpuPerObjectUs]);
  // What each object more costs, between one size and the next: the process's fixed part
  // (Node's start, loading topo, the reads) left out. Shown beside the target, not judged by it.
  const cpuAt = all.map(([n, r]) => [Number(n), r["apply from empty"]?.cpuMs]).filter(([, c]) => c !== undefined);
  const marginal = cpuAt.slice(1).map(([n, c], i) => {
    const [m, d] = cpuAt[i];
    return `${fmt(m)} → ${fmt(n)}: ${fmt(((c - d) * 1000) / (6 * (n - m)))} µs`;
  });
  t(
    "topo's own CPU ≤ 0.08 ms per object created (apply from empty, whole process)",
    `${cpuPer.map(([n, c]) => `N=${fmt(Number(n))}: ${fmt(c)} µs`).join("; ")}${marginal.length ? ` (each object more, between sizes: ${marginal.join("; ")})` : ""}`,
    cpuPer.every(([, c]) => c <= 80),
  );
  if (r1) {
    const pl = r1["plan, no changes (CLI)"]?.wallMs;
    t("plan with no changes at N = 1,000 ≤ 0.30 s, `topo plan` as a whole process", `${fmt(pl)} ms (two clusters)`, pl === undefined ? undefined : pl <= 300);
  }
  const floors = all.map(([n, r]) => [n, r["plan, no changes (CLI)"]?.wallMs, r["read floor"]?.wallMs]);
  t(
    "plan with no changes ≤ 1.2× the read floor, at every N",
    floors.map(([n, p, f]) => `N=${fmt(Number(n))}: ${fmt(p)} ms vs ${fmt(f)} ms (${ratio(p, f)})`).join("; "),
    floors.every(([, p, f]) => p / f <= 1.2),
  );
  if (r25) {
    const ap = r25["apply from empty"].wallMs;
    t("N = 25,000: apply from empty ≤ 90 s", `${fmt(ap / 1000, 1)} s; the import of the same objects ${fmt(r25["(a) definitions import"]?.wallMs / 1000, 1)} s (${ratio(ap, r25["(a) definitions import"]?.wallMs)})`, ap <= 90_000);
    const rss = Math.max(...Object.entries(r25).filter(([op]) => !BASELINES.includes(op)).map(([, m]) => m.maxRssMB ?? 0));
    t("N = 25,000: peak RSS ≤ 400 MB", `${fmt(rss, 1)} MB (largest of all operations)`, rss <= 400);
    const dr = r25["apply, 1% drift"].wallMs;
    const pl = r25["plan, no changes"].wallMs;
    t("N = 25,000: 1% drift apply ≤ 1.5× the no-change plan", `${fmt(dr)} ms vs ${fmt(pl)} ms (${ratio(dr, pl)})`, dr / pl <= 1.5);
  } else {
    t("N = 25,000: apply from empty ≤ 90 s, peak RSS ≤ 400 MB, 1% drift apply ≤ 1.5× the no-change plan", "needs BENCH_SIZES=...,25000", undefined);
  }
  const reads = all.map(([n, r]) => `N=${n}: ${r["plan, no changes"].httpRequests}`);
  const constant = new Set(all.map(([, r]) => r["plan, no changes"].httpRequests)).size === 1;
  t("constant number of reads per cluster, whatever N", `HTTP requests of a plan (two clusters): ${reads.join(", ")}`, constant);
  const noWrites = all.every(([, r]) => r["apply, no changes"].httpWrites === 0 && r["apply, no changes"].amqpRpcs === 0);
  t("apply with no changes makes no writes", `HTTP writes and AMQP methods of apply, no changes: ${all.map(([n, r]) => `N=${n}: ${r["apply, no changes"].httpWrites} + ${r["apply, no changes"].amqpRpcs}`).join(", ")}`, noWrites);
  if (r1 && r5) {
    const growth = Object.keys(r5)
      .filter((op) => !BASELINES.includes(op) && r1[op])
      .map((op) => [op, r5[op].wallMs / r1[op].wallMs]);
    const worst = growth.reduce((w, g) => (g[1] > w[1] ? g : w));
    t("t(5,000) / t(1,000) ≤ 6 for every operation", growth.map(([op, g]) => `${op}: ${g.toFixed(1)}`).join("; "), worst[1] <= 6);
    const rss = Math.max(...Object.entries(r5).filter(([op]) => !BASELINES.includes(op)).map(([, m]) => m.maxRssMB ?? 0));
    t("peak RSS at N = 5,000 ≤ 200 MB", `${fmt(rss, 1)} MB (largest of all operations)`, rss <= 200);
    const two = r5["apply from empty"].wallMs;
    const one = r5["apply from empty, one cluster"]?.wallMs;
    const twoPlan = r5["plan, no changes"].wallMs;
    const onePlan = r5["plan, no changes, one cluster"]?.wallMs;
    t(
      "two clusters take about as long as the slower one, not the sum",
      `N = 5,000, apply from empty: two clusters ${fmt(two)} ms, one ${fmt(one)} ms (${ratio(two, one)}); plan: two ${fmt(twoPlan)} ms, one ${fmt(onePlan)} ms (${ratio(twoPlan, onePlan)}). Judged on both, each ≤ 1.5×. Both clusters are vhosts of one 2-core broker, so they share its CPU: an apply, which the broker's CPU bounds, cannot take less than the sum here.`,
      // Both operations: a verdict on the plan alone called 1.96× for apply "met".
      one === undefined || onePlan === undefined ? undefined : two / one <= 1.5 && twoPlan / onePlan <= 1.5,
    );
  }
  t("`topo --help` ≤ 0.3 s", `${fmt(startup.help)} ms`, startup.help <= 300);
  t("`topo validate` on the example ≤ 0.3 s", `${fmt(startup.validate)} ms`, startup.validate <= 300);
  lines.push("");
  return lines;
}

/** How long an operation waited for an idle broker, for runs that recorded it. */
function idleWait(op) {
  return op.quietMs === undefined ? "" : `; waited ${(op.quietMs / 1000).toFixed(1)} s, ${op.brokerBusy} core`;
}

/** Every round's own figures: wall ms / topo CPU ms / broker CPU ms, and how long the broker took to settle. */
function raw(results) {
  const lines = [
    "## Raw figures of every round",
    "",
    "Each cell: wall ms / topo CPU ms / broker CPU ms, then (where the run recorded it) how long the operation waited for an idle broker before it started, and the broker's load, in cores, over the last second of that wait. Order: the contenders in the order they ran; settle: how long deleting a contender's vhosts and waiting for the broker took.",
    "",
  ];
  for (const [n, size] of Object.entries(results.sizes)) {
    const rounds = size.rounds;
    lines.push(`### N = ${fmt(Number(n))}`, "");
    lines.push(`| operation | ${rounds.map((r) => `round ${r.round}`).join(" | ")} |`, `|---|${rounds.map(() => "---|").join("")}`);
    const ops = [...new Set(rounds.flatMap((r) => Object.keys(r.ops)))];
    for (const op of ops) {
      lines.push(`| ${op} | ${rounds.map((r) => (r.ops[op] ? `${fmt(r.ops[op].wallMs)} / ${fmt(r.ops[op].cpuMs)} / ${fmt(r.ops[op].brokerCpuMs)}${idleWait(r.ops[op])}` : "–")).join(" | ")} |`);
    }
    lines.push(`| order | ${rounds.map((r) => r.order.join(" → ")).join(" | ")} |`);
    if ((results.files ?? []).length > 1) lines.push(`| results file | ${rounds.map((r) => `\`${r.file}\``).join(" | ")} |`);
    lines.push(`| settle ms | ${rounds.map((r) => Object.values(r.settles).map((s) => `${fmt(s.settleMs)}${s.settled ? "" : " (gave up)"}`).join(", ")).join(" | ")} |`);
    lines.push("");
  }
  return lines;
}

/** The section of BENCHMARKS.md that bench/commands.mjs's results make: every command at two sizes. */
export function commandsReport(r) {
  const [small, large] = r.sizes;
  // The work grows large / small times; one more allows for what does not grow (Node's start).
  const bound = large / small + 1;
  const rows = Object.keys(r.results[small]).map((name) => {
    const a = r.results[small][name];
    const b = r.results[large][name];
    const cell = (x) => (x.timedOut ? `> ${r.timeoutS} s (${x.timedOut} of ${x.runs.length} runs stopped)` : x.failed ? `failed: ${x.failed}` : `${fmt(x.wallMs)} / ${fmt(x.cpuMs)} / ${Math.round(x.maxRssMB)}`);
    const ratio = a.wallMs && b.wallMs && !b.timedOut ? b.wallMs / a.wallMs : undefined;
    const verdict = ratio !== undefined && ratio <= bound ? "met" : "**missed**";
    return `| ${name} | ${cell(a)} | ${cell(b)} | ${ratio === undefined ? "–" : ratio.toFixed(1)} | ${verdict} |`;
  });
  return [
    `## Every command at ${small.toLocaleString("en-US")} and ${large.toLocaleString("en-US")} services`,
    "",
    `Written by \`npm run bench:commands\` (bench/commands.mjs) on ${r.commit ?? "this code"}; raw figures in \`${r.file}\`. Each command runs as a user runs it (\`node dist/cli.js\`, a whole process), ${r.runs} times at each size, in alternating order, after the same untimed \`topo apply\` and a wait for an idle broker; none of them writes to the broker. Cells: median wall ms / topo CPU ms / peak RSS MB. The target is the benchmark's own: t(${large.toLocaleString("en-US")}) / t(${small.toLocaleString("en-US")}) ≤ ${bound}, since the work is ${large / small} times as much.`,
    "",
    `| command | ${small.toLocaleString("en-US")} services | ${large.toLocaleString("en-US")} services | ratio | ≤ ${bound} |`,
    "|---|---|---|---|---|",
    ...rows,
    "",
  ].join("\n");
}
