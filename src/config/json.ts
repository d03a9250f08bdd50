/**
 * JSON text parsing for the config file with useful diagnostics: syntax errors carry
 * line:column (Node 20's JSON.parse messages often carry no position at all), and duplicate
 * property names — which JSON.parse silently resolves to the last one — are reported.
 */

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

export function parseJsonText(text: string): JsonTextResult {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const scanner = new Scanner(text);
  let scanError: ScanError | undefined;
  try {
    scanner.document();
  } catch (e) {
    if (!(e instanceof ScanError)) throw e;
    scanError = e;
  }
  const duplicateKeys = scanner.duplicates.map((d) => ({ path: d.path, message: d.message, ...lineColumn(text, d.at) }));
  try {
    return { value: JSON.parse(text) as unknown, duplicateKeys };
  } catch (e) {
    if (scanError) {
      return { syntaxError: { message: scanError.message, ...lineColumn(text, scanError.at) }, duplicateKeys };
    }
    // The scanner accepted what JSON.parse refused: fall back to the engine's message.
    return { syntaxError: { message: (e as Error).message, line: 1, column: 1 }, duplicateKeys };
  }
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

class ScanError extends Error {
  constructor(
    message: string,
    readonly at: number,
  ) {
    super(message);
  }
}

const NUMBER_RE = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

class Scanner {
  private i = 0;
  readonly duplicates: Array<{ path: Array<string | number>; message: string; at: number }> = [];

  constructor(private readonly s: string) {}

  document(): void {
    this.ws();
    if (this.i >= this.s.length) this.fail('the file is empty; expected a JSON object');
    this.value([]);
    this.ws();
    if (this.i < this.s.length) this.fail('unexpected text after the end of the JSON value');
  }

  private fail(message: string, at = this.i): never {
    throw new ScanError(message, at);
  }

  private ws(): void {
    const s = this.s;
    for (;;) {
      const c = s[this.i];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') this.i++;
      else if (c === '/' && (s[this.i + 1] === '/' || s[this.i + 1] === '*')) this.fail('comments are not allowed in JSON');
      else return;
    }
  }

  private value(path: Array<string | number>): void {
    this.ws();
    const c = this.s[this.i];
    if (c === undefined) this.fail('unexpected end of file');
    if (c === '{') return this.object(path);
    if (c === '[') return this.array(path);
    if (c === '"') {
      this.string();
      return;
    }
    if (c === '-' || (c >= '0' && c <= '9')) return this.number();
    for (const lit of ['true', 'false', 'null']) {
      if (this.s.startsWith(lit, this.i) && !/[\w$]/.test(this.s[this.i + lit.length] ?? '')) {
        this.i += lit.length;
        return;
      }
    }
    if (c === "'") this.fail('strings must use double quotes');
    const word = /^[\w$.+-]+/.exec(this.s.slice(this.i, this.i + 40));
    if (word) this.fail(`unexpected ${JSON.stringify(word[0])}; strings must be in double quotes`);
    this.fail(`unexpected ${JSON.stringify(c)}`);
  }

  private object(path: Array<string | number>): void {
    this.i++; // {
    const keys = new Set<string>();
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return;
    }
    let afterComma = false;
    for (;;) {
      this.ws();
      const c = this.s[this.i];
      if (c !== '"') {
        if (c === undefined) this.fail('unexpected end of file; missing "}"?');
        if (afterComma && c === '}') this.fail('trailing comma before "}"');
        if (c === "'") this.fail('property names must use double quotes');
        this.fail('expected a property name in double quotes');
      }
      const keyAt = this.i;
      const key = this.string();
      if (keys.has(key)) {
        this.duplicates.push({ path: [...path, key], message: `duplicate property ${JSON.stringify(key)}`, at: keyAt });
      }
      keys.add(key);
      this.ws();
      if (this.s[this.i] !== ':') this.fail('expected ":" after the property name');
      this.i++;
      this.value([...path, key]);
      this.ws();
      const d = this.s[this.i];
      if (d === ',') {
        this.i++;
        afterComma = true;
        continue;
      }
      if (d === '}') {
        this.i++;
        return;
      }
      if (d === undefined) this.fail('unexpected end of file; missing "}"?');
      this.fail('expected "," or "}" after the property value');
    }
  }

  private array(path: Array<string | number>): void {
    this.i++; // [
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return;
    }
    for (let index = 0; ; index++) {
      this.ws();
      if (this.s[this.i] === ']' && index > 0) this.fail('trailing comma before "]"');
      this.value([...path, index]);
      this.ws();
      const d = this.s[this.i];
      if (d === ',') {
        this.i++;
        continue;
      }
      if (d === ']') {
        this.i++;
        return;
      }
      if (d === undefined) this.fail('unexpected end of file; missing "]"?');
      this.fail('expected "," or "]" after the array element');
    }
  }

  private string(): string {
    const start = this.i;
    this.i++; // opening quote
    const s = this.s;
    for (;;) {
      const c = s[this.i];
      if (c === undefined) this.fail('unterminated string', start);
      if (c === '"') {
        this.i++;
        return JSON.parse(s.slice(start, this.i)) as string;
      }
      if (c === '\\') {
        const e = s[this.i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(s.slice(this.i + 2, this.i + 6))) this.fail('invalid \\u escape in string');
          this.i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          this.i += 2;
        } else {
          this.fail(`invalid escape "\\${e ?? ''}" in string (write a backslash as "\\\\")`);
        }
        continue;
      }
      if (c.charCodeAt(0) < 0x20) {
        this.fail(c === '\n' || c === '\r' ? 'line break inside a string (missing closing quote?)' : 'control character inside a string');
      }
      this.i++;
    }
  }

  private number(): void {
    NUMBER_RE.lastIndex = this.i;
    const m = NUMBER_RE.exec(this.s);
    if (!m) this.fail('invalid number');
    this.i += m[0].length;
  }
}
