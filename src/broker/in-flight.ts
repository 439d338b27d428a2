// Steps under way that only this process can finish: an exchange replaced by delete and re-create
// gets back its bindings, users' too, which only this apply's plan knows (a later plan reads the
// exchange bare and cannot tell what was bound to it). A second Ctrl-C, which stops apply at once,
// waits for them and says so; a third stops anyway, naming what may be lost.

const steps = new Map<number, readonly string[]>();
let next = 0;

/** Mark a step under way, with what is lost if the process stops inside it; the function returned ends it. */
export function holdStep(atRisk: readonly string[]): () => void {
  const id = next++;
  steps.set(id, atRisk);
  return () => void steps.delete(id);
}

/** What the steps under way would lose if the process stopped now. */
export function stepsUnderWay(): string[] {
  return [...steps.values()].flat();
}

/** Whether this process has begun writing to a broker (apply's first write of any cluster). */
let writing = false;

/** Said by apply right before its first write to a cluster. */
export function writesBegin(): void {
  writing = true;
}

/** Whether any write began: a signal before that stops an apply that changed nothing. */
export function writesBegun(): boolean {
  return writing;
}
