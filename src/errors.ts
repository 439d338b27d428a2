// Errors are classes; only cli.ts turns them into output and an exit code.

export class TopoError extends Error {
  readonly exitCode: number = 1;
  /** Lines of advice printed after the message. */
  readonly hints: string[];
  /** True when retrying later may help (connection refused, 503, a connection lost to a restart). */
  readonly transient: boolean;
  constructor(message: string, hints: string[] = [], transient = false) {
    super(message);
    this.name = new.target.name;
    this.hints = hints;
    this.transient = transient;
  }
}

export interface ConfigProblem {
  file: string;
  line: number;
  col: number;
  message: string;
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.message}`;
}

/** The file is wrong. Carries every problem found, each with its place. */
export class ConfigError extends TopoError {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super(problems.map(formatProblem).join("\n"));
    this.problems = problems;
  }
}

/** The broker refused or could not be reached. The message names cluster, object and reply. */
export class BrokerError extends TopoError {
  readonly cluster: string;
  readonly status?: number | string;
  constructor(cluster: string, message: string, opts: { transient?: boolean; status?: number | string; hints?: string[] } = {}) {
    super(`cluster ${cluster}: ${message}`, opts.hints ?? [], opts.transient ?? false);
    this.cluster = cluster;
    this.status = opts.status;
  }
}

/** The plan holds actions the user has not allowed (destructive, or losing messages). */
export class UnsafePlanError extends TopoError {}

/** Apply could not take the cluster's lock in time. */
export class LockError extends TopoError {}

/** Apply stopped part way; the message says what was done and what was not. */
export class ApplyError extends TopoError {}
