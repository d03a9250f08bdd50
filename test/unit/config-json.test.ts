import { describe, expect, it } from 'vitest';
import { parseJsonText } from '../../src/config/json.js';

/** "line:column: message" of the syntax error parseJsonText reports for `text`. */
function syntaxErrorOf(text: string): string {
  const { syntaxError } = parseJsonText(text);
  if (!syntaxError) throw new Error(`expected a syntax error for ${JSON.stringify(text)}`);
  return `${syntaxError.line}:${syntaxError.column}: ${syntaxError.message}`;
}

describe('parseJsonText: syntax errors name the first offending character', () => {
  it.each([
    ['bad escape', '{"a": "x\\qy"}', '1:9: invalid escape "\\q" in string (write a backslash as "\\\\")'],
    ['bad \\u escape', '{"a": "\\u12"}', '1:8: invalid \\u escape in string'],
    ['control character', '{"a": "x\ty"}', '1:9: control character inside a string'],
    ['unterminated string at end of file', '{"a": "abc', '1:7: unterminated string'],
    ['lone minus', '{"a": -}', '1:7: invalid number'],
    ['number with a trailing dot', '{"a": 1.}', '1:8: expected "," or "}" after the property value'],
    ['literal followed by junk', '{"a": null\\}', '1:11: expected "," or "}" after the property value'],
    ['missing colon', '{"a" 1}', '1:6: expected ":" after the property name'],
    // RFC 8259 §2 allows only space, tab, LF and CR between tokens.
    ['no-break space', '{"a":\u00a01}', '1:6: unexpected "\u00a0"'],
    ['vertical tab', '[1,\v2]', '1:4: unexpected "\\u000b"'],
    ['unquoted property name', '{ a: 1 }', '1:3: expected a property name in double quotes'],
    ['array missing comma', '[1 2]', '1:4: expected "," or "]" after the array element'],
    ['block comment', '{"a": /* c */ 1}', '1:7: comments are not allowed in JSON'],
    ['open object at end of file', '{', '1:2: unexpected end of file; missing "}"?'],
    ['open array at end of file', '[1,', '1:4: unexpected end of file'],
  ])('%s', (_name, text, expected) => {
    expect(syntaxErrorOf(text)).toBe(expected);
  });

  it('parses valid JSON exactly as JSON.parse does, and reports every duplicate property', () => {
    const text = '{"a":{"b":1,"b":2},"c":[{"d":1},{"d":2,"d":3}],"e":"\\u00e9\\/"}';
    expect(parseJsonText(text)).toEqual({
      value: JSON.parse(text),
      duplicateKeys: [
        { path: ['a', 'b'], message: 'duplicate property "b"', line: 1, column: 13 },
        { path: ['c', 1, 'd'], message: 'duplicate property "d"', line: 1, column: 40 },
      ],
    });
  });
});
