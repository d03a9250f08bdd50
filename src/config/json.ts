/**
 * JSON text parsing for the config file with useful diagnostics: syntax errors carry
 * line:column (Node 20's JSON.parse messages often carry no position at all), and duplicate
 * property names — which JSON.parse silently resolves to the last one — are reported.
 *
 * The file is plain JSON (RFC 8259): no comments, no trailing commas. jsonc-parser finds the
 * first error and its offset; this module only words it, from what the parser expected at that
 * point (a property name, a value, or "," after one) and the character found there.
 */
import { ParseErrorCode, visit } from 'jsonc-parser';

export interface JsonTextProblem {
  line: number;
  column: number;
  message: string;
}

export interface JsonTextResult {
  /** Parsed value; undefined when `syntaxError` is set. */
  value?: unknown;
  syntaxError?: JsonTextProblem;
  /** Properties defined twice in the same object (path of the duplicate, position of the second one). */
  duplicateKeys: Array<JsonTextProblem & { path: Array<string | number> }>;
}

/** What the parser expected where the error is. */
type Expecting = 'key' | 'colon' | 'value' | 'separator';

interface SyntaxErrorSite {
  /** undefined: a character that jsonc-parser skips as whitespace but RFC 8259 §2 does not allow. */
  code: ParseErrorCode | undefined;
  offset: number;
  expecting: Expecting;
  /** Innermost open object or array; undefined at the top level. */
  container: 'object' | 'array' | undefined;
  /** The last token was a "," (so a closing bracket here is a trailing comma). */
  afterComma: boolean;
}

/** RFC 8259 §2: the only whitespace allowed between tokens. */
const NOT_JSON_WHITESPACE = /[^ \t\n\r]/;

export function parseJsonText(text: string): JsonTextResult {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const duplicateKeys: JsonTextResult['duplicateKeys'] = [];
  const open: Array<{ kind: 'object' | 'array'; keys: Set<string> }> = [];
  let expecting: Expecting = 'value';
  let afterComma = false;
  let error: SyntaxErrorSite | undefined;
  let tokenEnd = 0;
  const failAt = (code: ParseErrorCode | undefined, offset: number) => {
    error ??= { code, offset, expecting, container: open.at(-1)?.kind, afterComma };
  };
  /** Called first for every token: the text since the previous one must be JSON whitespace. */
  const token = (offset: number, length: number) => {
    const gap = NOT_JSON_WHITESPACE.exec(text.slice(tokenEnd, offset));
    if (gap) failAt(undefined, tokenEnd + gap.index);
    tokenEnd = Math.max(tokenEnd, offset + length);
  };
  const closed = (offset: number, length: number) => {
    if (length === 0) return; // a missing "}" or "]": the error that follows is reported where it was missed
    token(offset, length);
    open.pop();
    expecting = 'separator';
    afterComma = false;
  };
  visit(
    text,
    {
      onObjectBegin: (offset, length) => {
        token(offset, length);
        open.push({ kind: 'object', keys: new Set() });
        expecting = 'key';
        afterComma = false;
      },
      onArrayBegin: (offset, length) => {
        token(offset, length);
        open.push({ kind: 'array', keys: new Set() });
        expecting = 'value';
        afterComma = false;
      },
      onObjectEnd: closed,
      onArrayEnd: closed,
      onObjectProperty: (key, offset, length, _line, _column, objectPath) => {
        token(offset, length);
        const keys = open.at(-1)!.keys;
        if (keys.has(key) && error === undefined) {
          duplicateKeys.push({ path: [...objectPath(), key], message: `duplicate property ${JSON.stringify(key)}`, ...lineColumn(text, offset) });
        }
        keys.add(key);
        expecting = 'colon';
        afterComma = false;
      },
      onLiteralValue: (_value, offset, length) => {
        token(offset, length);
        expecting = 'separator';
        afterComma = false;
      },
      onSeparator: (character, offset, length) => {
        token(offset, length);
        afterComma = character === ',';
        expecting = character === ',' && open.at(-1)?.kind === 'object' ? 'key' : 'value';
      },
      onError: (code, offset) => {
        token(offset, 0);
        failAt(code, offset);
      },
    },
    { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false },
  );
  token(text.length, 0);
  if (error) {
    const { message, at } = describeSyntaxError(text, error);
    return { syntaxError: { message, ...lineColumn(text, at) }, duplicateKeys };
  }
  try {
    return { value: JSON.parse(text) as unknown, duplicateKeys };
  } catch (e) {
    // jsonc-parser accepted what JSON.parse refused: fall back to the engine's message.
    return { syntaxError: { message: (e as Error).message, line: 1, column: 1 }, duplicateKeys };
  }
}

/** Longest prefix of a string token that is valid JSON (RFC 8259 §7: escapes, no control characters). */
const VALID_STRING_PREFIX = /^"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*/;
/** RFC 8259 §6 number grammar. */
const NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/;
const LITERAL = /^(true|false|null)(?![\w$])/;

/** The message for the first syntax error: what was expected at its offset, and what is there. */
function describeSyntaxError(text: string, e: SyntaxErrorSite): { message: string; at: number } {
  const at = e.offset;
  const c: string | undefined = text[at];
  if (e.code === ParseErrorCode.InvalidCommentToken || e.code === ParseErrorCode.UnexpectedEndOfComment) {
    return { message: 'comments are not allowed in JSON', at };
  }
  switch (e.expecting) {
    case 'colon':
      return { message: 'expected ":" after the property name', at };
    case 'separator': {
      if (e.container === undefined) return { message: 'unexpected text after the end of the JSON value', at };
      const close = e.container === 'object' ? '}' : ']';
      if (c === undefined) return { message: `unexpected end of file; missing "${close}"?`, at };
      return { message: e.container === 'object' ? 'expected "," or "}" after the property value' : 'expected "," or "]" after the array element', at };
    }
    case 'key':
      if (c === '"') return describeStringError(text, at);
      if (c === undefined) return { message: 'unexpected end of file; missing "}"?', at };
      if (e.afterComma && c === '}') return { message: 'trailing comma before "}"', at };
      if (c === "'") return { message: 'property names must use double quotes', at };
      return { message: 'expected a property name in double quotes', at };
    case 'value':
      break;
  }
  if (c === '"') return describeStringError(text, at);
  if (c === undefined) {
    return { message: text.trim() === '' ? 'the file is empty; expected a JSON object' : 'unexpected end of file', at };
  }
  // A valid number or literal followed by something else: the something else is what is wrong.
  const value = LITERAL.exec(text.slice(at, at + 6))?.[0] ?? NUMBER.exec(text.slice(at))?.[0];
  if (value !== undefined) return describeSyntaxError(text, { ...e, offset: at + value.length, expecting: 'separator', afterComma: false });
  if (c === '-' || (c >= '0' && c <= '9')) return { message: 'invalid number', at };
  if (e.afterComma && c === ']') return { message: 'trailing comma before "]"', at };
  if (c === "'") return { message: 'strings must use double quotes', at };
  const word = /^[\w$.+-]+/.exec(text.slice(at, at + 40));
  if (word) return { message: `unexpected ${JSON.stringify(word[0])}; strings must be in double quotes`, at };
  return { message: `unexpected ${JSON.stringify(c)}`, at };
}

/** The first invalid character of the string token starting at `start`. */
function describeStringError(text: string, start: number): { message: string; at: number } {
  const at = start + VALID_STRING_PREFIX.exec(text.slice(start))![0].length;
  const c: string | undefined = text[at];
  if (c === undefined) return { message: 'unterminated string', at: start };
  if (c === '\\') {
    const e = text[at + 1];
    if (e === 'u') return { message: 'invalid \\u escape in string', at };
    return { message: `invalid escape "\\${e ?? ''}" in string (write a backslash as "\\\\")`, at };
  }
  if (c === '\n' || c === '\r') return { message: 'line break inside a string (missing closing quote?)', at };
  return { message: 'control character inside a string', at };
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}
