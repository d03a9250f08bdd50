/**
 * Wording of configuration problems. Every problem is one line naming the field in
 * bracket/dot notation, then what is wrong and the fix:
 *   targets[0].luns[0].size: "8X" is not a size; use e.g. "8G"
 * The schema (config/schema.ts) words what is specific to a field; this module words what is
 * common to all fields (missing, wrong JSON type, unknown field with a "did you mean"
 * suggestion) and turns zod's issues into these lines.
 */
import * as z from 'zod';

export interface Issue {
  path: PropertyKey[];
  message: string;
}

/** Format a path in the bracket/dot notation used in all config messages: `targets[0].luns[1].size`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = String(seg);
      if (/^[A-Za-z_$][\w$]*$/.test(s)) out += out === '' ? s : `.${s}`;
      else out += `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}

export function formatIssue(issue: Issue): string {
  const p = formatPath(issue.path);
  return p === '' ? issue.message : `${p}: ${issue.message}`;
}

/** A JSON value as a message shows it: strings quoted (and shortened), containers by kind. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return quote(v);
  return String(v);
}

export function quote(s: string): string {
  const q = JSON.stringify(s);
  return q.length > 70 ? `${q.slice(0, 66)}…"` : q;
}

type RawIssue = z.core.$ZodRawIssue;

/**
 * A zod `error` function for a field: "expected <what>, got <value>[; <fix>]". A missing value
 * is left to fieldMessage ("required").
 */
export function expected(what: string, fix?: string): (issue: RawIssue) => string | undefined {
  return (issue) => (issue.input === undefined ? undefined : `expected ${what}, got ${describe(issue.input)}${fix !== undefined ? `; ${fix}` : ''}`);
}

/** The error map for parsing the config file: wording for issues whose schema gives none. */
export function fieldMessage(issue: RawIssue): string | undefined {
  if (issue.input === undefined) return 'required';
  if (issue.code === 'invalid_type') {
    const expectedType = issue.expected === 'array' ? 'a list' : issue.expected === 'object' ? 'an object' : issue.expected;
    return `expected ${expectedType}, got ${describe(issue.input)}`;
  }
  return undefined;
}

/**
 * zod's issues as config issues: an unknown field is one issue per field, with the closest
 * known field name of that object as a suggestion; a value matching no alternative of a union
 * (portal "host:port" or object) is explained by the alternative of the value's JSON type.
 */
export function configIssues(issues: readonly z.core.$ZodIssue[], schema: z.ZodType, prefix: PropertyKey[] = []): Issue[] {
  const out: Issue[] = [];
  for (const issue of issues) {
    const p = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      // "$schema" is for editors, not a setting: not offered.
      const known = fieldNamesAt(schema, p).filter((k) => !k.startsWith('$'));
      for (const key of issue.keys) {
        const hint = closest(key, known);
        out.push({ path: [...p, key], message: hint ? `unknown field; did you mean ${quote(hint)}?` : `unknown field; known fields here: ${known.join(', ')}` });
      }
    } else if (issue.code === 'invalid_union') {
      const explaining = issue.errors.filter((option) => !option.some((i) => i.path.length === 0 && isTypeMismatch(i)));
      if (explaining.length === 1) out.push(...configIssues(explaining[0]!, schema, p));
      else out.push({ path: p, message: issue.message });
    } else {
      out.push({ path: p, message: issue.message });
    }
  }
  return out;
}

function isTypeMismatch(issue: z.core.$ZodIssue): boolean {
  return issue.code === 'invalid_type' || issue.code === 'invalid_value' || issue.code === 'invalid_union';
}

/** The field names of the object schema at `path` (array indices step into elements, unions into their object alternative). */
function fieldNamesAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let s: unknown = schema;
  let i = 0;
  for (;;) {
    if (s instanceof z.ZodOptional || s instanceof z.ZodDefault || s instanceof z.ZodPrefault) s = s.unwrap();
    else if (s instanceof z.ZodUnion) s = (s.options as unknown[]).find((o) => o instanceof z.ZodObject);
    else if (s instanceof z.ZodArray && typeof path[i] === 'number') {
      s = s.element;
      i++;
    } else if (s instanceof z.ZodObject) {
      if (i === path.length) return Object.keys(s.shape);
      s = (s.shape as Record<PropertyKey, unknown>)[path[i++]!];
    } else return [];
  }
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  return best !== undefined && bestDist <= Math.max(1, Math.min(3, Math.floor(best.length / 3))) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
