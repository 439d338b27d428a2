// Output for people: colour only on a terminal (NO_COLOR and --no-color honoured), and apply's
// progress: one line redrawn in place on a terminal, a few plain lines in a pipe or a CI log.

import { ansi, plain, type Paint } from "./plan/render.js";

/**
 * https://no-color.org: any non-empty NO_COLOR turns colour off. So does CI (CI=true, as every CI
 * service sets it): a CI runner may give the job a terminal, but what it prints ends in a log.
 */
export function paintFor(stream: { isTTY?: boolean }, colorFlag: boolean, env: NodeJS.ProcessEnv = process.env): Paint {
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== "";
  const ci = env.CI !== undefined && env.CI !== "" && env.CI !== "false" && env.CI !== "0";
  return colorFlag && !noColor && !ci && stream.isTTY === true ? ansi : plain;
}

/** Below this many changes an apply is over in a moment and plain logs say enough. */
const PLAIN_MIN_CHANGES = 100;
/** A terminal counter appears only once an apply has taken this long. */
const TTY_DELAY_MS = 300;
const TTY_REDRAW_MS = 100;
/** How long an apply may make no change before it says it is still waiting, and how often it says so again. */
const STALL_MS = 30_000;
/** How often the command line asks Progress whether an apply has gone quiet. */
export const STALL_TICK_MS = 5_000;

export class Progress {
  /**
   * Clusters under way: done of total, the quarter last reported, when a change was last made and
   * when the quiet was last said; and what a long step last said it was doing (busy), and when.
   */
  private readonly clusters = new Map<string, { done: number; total: number; reported: number; movedAt: number; saidAt: number; doing?: { what: string; at: number } }>();
  private readonly started: number;
  private lastDraw = 0;
  private drawn = false;

  constructor(
    /** Writes raw text (no newline added) to stderr. */
    private readonly write: (text: string) => void,
    private readonly tty: boolean,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.started = now();
  }

  /** A log line: on a terminal the counter is cleared first and drawn again after it. */
  readonly log = (msg: string): void => {
    this.clear();
    this.write(`${msg}\n`);
    if (this.tty && this.clusters.size) this.draw();
  };

  readonly update = (cluster: string, done: number, total: number): void => {
    const now = this.now();
    const c = this.clusters.get(cluster) ?? { done, total, reported: 0, movedAt: now, saidAt: now };
    if (done !== c.done) {
      c.movedAt = c.saidAt = now;
      c.doing = undefined;
    }
    c.done = done;
    c.total = total;
    // A cluster whose changes are all made leaves the counter (its own log line says so).
    if (done >= total) this.clusters.delete(cluster);
    else this.clusters.set(cluster, c);
    if (this.tty) {
      const t = this.now();
      if (t - this.started >= TTY_DELAY_MS && (t - this.lastDraw >= TTY_REDRAW_MS || done === total)) this.draw();
      return;
    }
    // In a log, a line at each quarter of a large apply: enough to see it move, never a flood.
    if (total < PLAIN_MIN_CHANGES) return;
    const quarter = Math.floor((done * 4) / total);
    if (quarter > c.reported && quarter < 4) {
      c.reported = quarter;
      this.write(`cluster ${cluster}: ${done} of ${total} changes made (${quarter * 25}%)\n`);
    }
  };

  /**
   * Called every few seconds: a cluster that has made no change for STALL_MS says so, and again
   * every STALL_MS, so that a deploy job's log is never silent for minutes (a broker that stopped
   * answering is given up on only after its heartbeats time out; a queue's move takes as long as
   * its messages do).
   */
  readonly tick = (): void => {
    const t = this.now();
    for (const [name, c] of this.clusters) {
      if (t - c.saidAt < STALL_MS) continue;
      c.saidAt = t;
      // A step that made headway within the quiet (a replace moving messages) is not waiting.
      if (c.doing && t - c.doing.at < STALL_MS) {
        this.log(`cluster ${name}: ${c.done} of ${c.total} changes made; ${c.doing.what}`);
        continue;
      }
      this.log(`cluster ${name}: ${c.done} of ${c.total} changes made, none in the last ${Math.round((t - c.movedAt) / 1000)} s; still waiting for the broker`);
    }
  };

  /**
   * A cluster's long step made headway without completing a change (a replace's move, after each
   * batch): the next quiet line says what it is doing rather than that it waits for the broker.
   */
  readonly busy = (cluster: string, what: string): void => {
    const c = this.clusters.get(cluster);
    if (c) c.doing = { what, at: this.now() };
  };

  /** A cluster whose apply is over, done or failed: it leaves the counter, and is never said to wait. */
  readonly ended = (cluster: string): void => {
    if (!this.clusters.delete(cluster)) return;
    if (this.tty && this.drawn) this.draw();
  };

  /** Take the counter off the screen before the final result is printed. */
  end(): void {
    this.clear();
    this.clusters.clear();
  }

  private draw(): void {
    if (this.clusters.size === 0) {
      this.clear();
      return;
    }
    const parts = [...this.clusters].map(([name, c]) => `${name} ${c.done}/${c.total}`);
    this.write(`\r\x1b[Kapplying: ${parts.join(", ")}`);
    this.lastDraw = this.now();
    this.drawn = true;
  }

  private clear(): void {
    if (!this.drawn) return;
    this.write("\r\x1b[K");
    this.drawn = false;
  }
}
