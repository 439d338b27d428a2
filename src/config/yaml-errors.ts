// Pure: the YAML library's complaints about a file, in words that quote nothing of the file. The
// library puts source text into many of its messages (an alias's or a tag's name, a block scalar
// header, the token it stumbled on), and any value of a topology may be a password: a password
// that starts with "*" is an alias to the library, and its message names the alias. So a message
// of the library is shown only when it is one of the library's own sentences with nothing of the
// file in it (YAML_SENTENCES); every other gets topo's words for its code.

/** The next step for a value YAML read as syntax, because of the character it starts with. */
export const QUOTE_IT = `if it is text (a password, say), put it in quotes ('...', or "..." with \\\\ for a backslash)`;

/** A value that starts with a character YAML reserves, named as a class: never which one it was. */
export const STARTS_WITH_SYNTAX = `YAML reads a value that starts with & * ! | > % @ or \` as YAML syntax (an anchor, alias, tag or block scalar, or a reserved character), not as text; ${QUOTE_IT}`;

/** An anchor, alias or tag on a password or a URL: the value YAML gives it is not what is written. */
export const SECRET_WITH_SYNTAX = `this value starts with YAML syntax (an anchor &, an alias * or a tag !), so YAML would read something other than what is written; if the password or URL itself starts with such a character, put it in quotes ('...', or "..." with \\\\ for a backslash)`;

/** The library's own sentences, which hold no text of the file (the fill-ins are its vocabulary). */
const YAML_SENTENCES: RegExp[] = [
  /^Unexpected [a-z-]+ token in YAML (stream|document)$/,
  /^Unexpected [a-z-]+ (at node end|token)$/,
  /^Unexpected [,:?-] in (flow map|flow sequence|flow collection|collection)$/,
  /^Unexpected empty item in flow (map|sequence|collection)$/,
  /^Missing (,|, or :) between flow (map|sequence|collection) items$/,
  /^Missing space after : in flow (map|sequence|collection)$/,
  /^Anchors and tags must be after the [?:-] indicator$/,
  /^Flow (map|sequence|collection) in block collection must be sufficiently indented and end with a [\]}]$/,
  /^Expected a flow scalar value, but found: [a-z-]+$/,
  /^Unexpected token in block scalar header: [a-z-]+$/,
  /^Block scalar lines must not be less indented than their (first line|explicit indentation indicator)$/,
  /^Missing closing ["']quote$/,
  /^(All mapping items must start at the same column|All sequence items must start at the same column|Tabs are not allowed as indentation)$/,
  /^(Implicit map keys need to be followed by map values|Implicit keys need to be on a single line|Implicit keys of flow sequence pairs need to be on a single line)$/,
  /^(Nested mappings are not allowed in compact mappings|A block sequence may not be used as an implicit map key)$/,
  /^(Block collections are not allowed within flow collections|Flow end indicator should be more indented than parent)$/,
  /^(Block scalar values in collections must be indented|Block scalars with more-indented leading empty lines must use an explicit indentation indicator)$/,
  /^(Comments must be separated from other tokens by white space characters|Missing newline after block sequence props|Sequence item without - indicator)$/,
  /^(Unexpected block-seq-ind on same line with key|Unexpected doc-end without preceding document|Tags and anchors must be separated from the next token by white space)$/,
  /^Map keys must be unique$/,
  /^(A node can have at most one anchor|A node can have at most one tag|An alias node must not specify any properties)$/,
  /^(Missing directives-end indicator line|Missing directives-end\/doc-start indicator line|Block collection cannot start on same line with directives-end marker)$/,
  /^The : indicator must be at most 1024 chars after the start of an implicit (block mapping|flow sequence) key$/,
];

/** What to do about the library's commonest sentences, said after them. */
const NEXT_STEPS: [RegExp, string][] = [
  [/^Tabs are not allowed as indentation$/, "; indent with spaces (set the editor to insert spaces for a tab)"],
  [/^Missing closing (["'])quote$/, "; the quote opened here is never closed, so the value runs to the end of the file: close it where the value ends"],
  [/^Nested mappings are not allowed in compact mappings$/, `; a value that holds ": " is read as another key: put the value in quotes, or put the inner key on a line of its own`],
  [/^Implicit map keys need to be followed by map values$/, `; a line here is neither "key: value" nor a list item ("- "): add the colon (and a space after it), or the "- "`],
  [/^Implicit keys need to be on a single line$/, `; a key here runs over two lines, as when a line lacks its ": ": add it`],
  [/^All (mapping|sequence) items must start at the same column$/, "; indent the items of one mapping or list alike"],
  [/^Unexpected , in flow (map|sequence)$/, "; a comma here follows no value (two commas, or one right after { or [): remove it"],
  [/^Flow (sequence|map|mapping|collection) in block collection must be sufficiently indented and end with a [\]}]$/, "; a [ or { opened above is never closed, or a line of it is indented less than its key: close it where the list or mapping ends, and indent its lines under the key"],
];

/**
 * What to say about one of the library's errors or warnings, given its code and message; the
 * callers handle MULTIPLE_DOCS and DUPLICATE_KEY themselves, which need the document.
 */
export function yamlMessage(code: string, libraryMessage: string): string {
  // The parser's "...in YAML stream" errors end with the token's text: never shown.
  const message = (libraryMessage.split("\n")[0] ?? "").replace(/^(Unexpected [a-z-]+ token in YAML (?:stream|document)): .*$/, "$1");
  if (/call stack/i.test(message)) return `nesting is too deep to read; a topology is a few levels deep`;
  switch (code) {
    case "BAD_SCALAR_START":
    case "TAG_RESOLVE_FAILED":
    case "BAD_COLLECTION_TYPE":
    case "BAD_ALIAS":
      return STARTS_WITH_SYNTAX;
    case "BAD_DQ_ESCAPE":
      return `a double-quoted value holds a \\ escape YAML does not know; write \\\\ for a backslash, or use single quotes ('...'), in which \\ is just a backslash`;
    case "BAD_DIRECTIVE":
      return `a line that starts with % is a YAML directive; ${QUOTE_IT}`;
  }
  if (/^Block scalar header includes extra characters/.test(message)) return STARTS_WITH_SYNTAX;
  if (/^Anchor must not contain/.test(message)) return STARTS_WITH_SYNTAX;
  if (YAML_SENTENCES.some((r) => r.test(message))) return `YAML: ${message}${NEXT_STEPS.find(([r]) => r.test(message))?.[1] ?? ""}`;
  return `YAML cannot read the file here (${code}); ${QUOTE_IT}`;
}

/** How many values aliases and merge keys may repeat in one file (the YAML library's maxAliasCount). */
export const MAX_ALIAS_COUNT = 10_000;

/** What toJS() threw, in words that quote nothing of the file. */
export function yamlReadMessage(libraryMessage: string, largest?: { name: string; values: number }): string {
  if (/^Excessive alias count indicates a resource exhaustion attack/.test(libraryMessage)) {
    // Past a billion, a count of this size is a float: its power of ten says what matters.
    const count = (n: number) => (n < 1e9 ? n.toLocaleString("en-US") : `about ${(n / 10 ** Math.floor(Math.log10(n))).toFixed(1)} × 10^${Math.floor(Math.log10(n))}`);
    const here = largest ? ` (the alias *${largest.name} here repeats ${count(largest.values)} values, the most of any)` : "";
    return `cannot read YAML: its aliases (*name) and merge keys (<<) repeat more than ${MAX_ALIAS_COUNT.toLocaleString("en-US")} values, counting those inside what they repeat${here}, which is where topo stops as a guard against a file that grows without end; say what services share once, under defaults:`;
  }
  return `cannot read YAML here; ${QUOTE_IT}`;
}

/** The library's sentence for a [ or { that a block collection's next line finds still open. */
export const UNCLOSED_FLOW = /^Flow (sequence|map|mapping|collection) in block collection must be sufficiently indented and end with a ([\]}])$/;

/**
 * Where the [ or { that the library found unclosed at `end` opens: the outermost flow collection
 * still open there, of the kind its sentence names, read from the start of the text with quotes,
 * comments and plain text left out. Undefined when the scan finds none (then the library's own
 * place stands).
 */
export function unclosedFlowAt(text: string, end: number, closer: "]" | "}"): number | undefined {
  const opener = closer === "]" ? "[" : "{";
  const open: { c: string; at: number }[] = [];
  // Whether a token may start here: at a line's start, or after a space or a flow indicator.
  const tokenStart = (i: number): boolean => i === 0 || /[\s,[\]{}:]/.test(text[i - 1] as string);
  for (let i = 0; i < Math.min(end, text.length); i++) {
    const c = text[i] as string;
    if (c === "#" && tokenStart(i)) {
      const nl = text.indexOf("\n", i);
      if (nl < 0) break;
      i = nl;
    } else if ((c === '"' || c === "'") && tokenStart(i)) {
      let j = i + 1;
      for (; j < text.length; j++) {
        if (c === '"' && text[j] === "\\") j++;
        else if (text[j] === c) {
          if (c === "'" && text[j + 1] === "'") j++;
          else break;
        }
      }
      i = j;
    } else if ((c === "[" || c === "{") && (open.length > 0 || tokenStart(i))) open.push({ c, at: i });
    else if ((c === "]" || c === "}") && open.length > 0) open.pop();
    else if (open.length === 0 && (c === "-" || c === "?") && /\s/.test(text[i + 1] ?? " ")) continue;
    else if (open.length === 0 && !/\s/.test(c)) {
      // Plain text of a block value: a [ or { inside it is a character, to the end of its line.
      const nl = text.indexOf("\n", i);
      const colon = text.slice(i, nl < 0 ? undefined : nl).search(/:(\s|$)/);
      if (colon >= 0) i += colon;
      else if (nl < 0) break;
      else i = nl;
    }
  }
  return open.find((o) => o.c === opener)?.at;
}
