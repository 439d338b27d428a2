// Pure: Plan → markdown for a pull-request comment (`topo plan --format markdown`, `topo show`).
// A reviewer reads the summary line, opens a cluster, and sees what can hurt first: replaces and
// deletes with their reasons, then the rest. The actions sit in a ```diff fence so GitHub
// colours + and - lines.

import type { Action, ClusterPlan, Plan } from "../model.js";
import { destructiveActions } from "./diff.js";
import { noChanges, renderAction, renderClusterHeader, renderSummary } from "./render.js";
import { plural } from "../core/words.js";

export interface MarkdownMeta {
  /** Where the plan comes from, e.g. "saved plan of topology.yaml, made by topo 0.1.0". */
  source?: string;
}

const escapeHtml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function clusterSummary(c: ClusterPlan): string {
  if (c.actions.length === 0) return `cluster ${c.cluster}: ${noChanges(c)}`;
  const risky = destructiveActions(c).length;
  return `cluster ${c.cluster}: ${plural(c.actions.length, "change")}${risky ? ` (${risky} destructive)` : ""}`;
}

/** Replaces first, then deletes, then creates and updates, each group in the plan's order. */
function reviewOrder(actions: Action[]): Action[] {
  const rank: Record<Action["op"], number> = { replace: 0, delete: 1, create: 2, update: 3 };
  return actions.map((a, i) => ({ a, i })).sort((x, y) => rank[x.a.op] - rank[y.a.op] || x.i - y.i).map(({ a }) => a);
}

export function renderMarkdown(plan: Plan, meta: MarkdownMeta = {}): string {
  const lines: string[] = [`**topo plan**: ${renderSummary(plan, "below")}`];
  if (meta.source) lines.push("", `<sub>${escapeHtml(meta.source)}</sub>`);
  for (const c of plan.clusters) {
    // Open by default when the cluster holds something destructive, so it cannot be missed.
    const open = destructiveActions(c).length ? " open" : "";
    lines.push("", `<details${open}><summary>${escapeHtml(clusterSummary(c))}</summary>`, "", `\`${renderClusterHeader(c).replace(/`/g, "'")}\``, "");
    const notes = [...c.warnings.map((w) => `! warning: ${w}`), ...c.degraded.map((d) => `! degraded: ${d}`)];
    const body = [...notes, ...reviewOrder(c.actions).flatMap(renderAction)];
    // Appended one by one: spread into push, a plan of 150,000 actions ran out of stack.
    if (body.length) {
      lines.push("```diff");
      for (const line of body) lines.push(line);
      lines.push("```", "");
    }
    else lines.push("No changes.", "");
    lines.push("</details>");
  }
  return lines.join("\n");
}
