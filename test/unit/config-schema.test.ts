import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import { ConfigError, parseConfig } from '../../src/config/load.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCHEMA_FILE = path.join(ROOT, 'docs/target.schema.json');

type JsonSchema = Record<string, unknown>;

/**
 * A small JSON Schema (draft 2020-12) checker: the keywords docs/target.schema.json uses.
 * Returns the paths (and keywords) where `value` breaks `schema`. It throws on a keyword it
 * does not know, so that the schema cannot grow a rule these tests silently skip.
 */
function violations(value: unknown, schema: JsonSchema, root: JsonSchema, at = ''): string[] {
  const known = new Set(['$schema', '$defs', '$ref', 'title', 'description', 'default', 'type', 'properties', 'required', 'additionalProperties',
    'items', 'minItems', 'uniqueItems', 'enum', 'const', 'anyOf', 'minimum', 'maximum', 'exclusiveMinimum', 'minLength', 'maxLength', 'pattern']);
  for (const k of Object.keys(schema)) if (!known.has(k)) throw new Error(`unknown keyword ${k} at ${at}`);
  if (typeof schema.$ref === 'string') {
    const target = schema.$ref.replace(/^#\/\$defs\//, '');
    return violations(value, (root.$defs as Record<string, JsonSchema>)[target]!, root, at);
  }
  const out: string[] = [];
  const fail = (keyword: string) => out.push(`${at || '(root)'}: ${keyword}`);
  if (schema.anyOf) {
    if (!(schema.anyOf as JsonSchema[]).some((s) => violations(value, s, root, at).length === 0)) fail('anyOf');
    return out;
  }
  const type = schema.type as string | undefined;
  const typeOk =
    type === undefined ||
    (type === 'object' && value !== null && typeof value === 'object' && !Array.isArray(value)) ||
    (type === 'array' && Array.isArray(value)) ||
    (type === 'string' && typeof value === 'string') ||
    (type === 'integer' && Number.isInteger(value)) ||
    (type === 'number' && typeof value === 'number') ||
    (type === 'boolean' && typeof value === 'boolean');
  if (!typeOk) return [`${at || '(root)'}: type ${type}`];
  if (schema.enum && !(schema.enum as unknown[]).includes(value)) fail('enum');
  if ('const' in schema && schema.const !== value) fail('const');
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) fail('minimum');
    if (typeof schema.maximum === 'number' && value > schema.maximum) fail('maximum');
    if (typeof schema.exclusiveMinimum === 'number' && value <= schema.exclusiveMinimum) fail('exclusiveMinimum');
  }
  if (typeof value === 'string') {
    if (typeof schema.minLength === 'number' && value.length < schema.minLength) fail('minLength');
    if (typeof schema.maxLength === 'number' && value.length > schema.maxLength) fail('maxLength');
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(value)) fail('pattern');
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) fail('minItems');
    if (schema.uniqueItems && new Set(value.map((v) => JSON.stringify(v))).size !== value.length) fail('uniqueItems');
    if (schema.items) value.forEach((v, i) => out.push(...violations(v, schema.items as JsonSchema, root, `${at}[${i}]`)));
  }
  if (type === 'object') {
    const obj = value as Record<string, unknown>;
    const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
    for (const r of (schema.required ?? []) as string[]) if (!(r in obj)) fail(`required ${r}`);
    for (const [k, v] of Object.entries(obj)) {
      if (props[k]) out.push(...violations(v, props[k], root, at ? `${at}.${k}` : k));
      else if (schema.additionalProperties === false) fail(`additionalProperties ${k}`);
    }
  }
  return out;
}

async function committedSchema(): Promise<JsonSchema> {
  return JSON.parse(await readFile(SCHEMA_FILE, 'utf8')) as JsonSchema;
}

/** Every ```json block of the README and docs/ that is a config file (has "targets"). */
async function documentedConfigs(): Promise<Array<{ where: string; config: Record<string, unknown> }>> {
  const files = ['README.md', 'docker/README.md', ...(await readdir(path.join(ROOT, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const found: Array<{ where: string; config: Record<string, unknown> }> = [];
  for (const file of files) {
    const text = await readFile(path.join(ROOT, file), 'utf8');
    for (const [i, m] of [...text.matchAll(/```json\n([\s\S]*?)```/g)].entries()) {
      const config = JSON.parse(m[1]!) as Record<string, unknown>;
      if ('targets' in config) found.push({ where: `${file} json block ${i + 1}`, config });
    }
  }
  return found;
}

describe('docs/target.schema.json', () => {
  it('is what `glfs-target schema` prints', async () => {
    let stdout = '';
    expect(await runCli(['schema'], { stdout: (t) => void (stdout += t), stderr: () => {} })).toBe(0);
    expect(stdout).toBe(await readFile(SCHEMA_FILE, 'utf8'));
  });

  it('accepts the example configs of the README and docs/, which the server accepts too', async () => {
    const schema = await committedSchema();
    const examples = await documentedConfigs();
    expect(examples.map((e) => e.where)).toEqual(['README.md json block 1', 'README.md json block 2', 'docs/authentication.md json block 1']);
    for (const { where, config } of examples) {
      expect(violations(config, schema, schema), where).toEqual([]);
      expect(() => parseConfig(config, '/etc/glfs-target', { env: {}, cwd: '/' }), where).not.toThrow();
    }
  });

  it('refuses what the server refuses field by field', async () => {
    const schema = await committedSchema();
    const lun = (extra: Record<string, unknown>) => ({ targets: [{ iqn: 'iqn.2016-06.org.gluster:node1', luns: [{ lun: 0, path: '/a.img', ...extra }] }] });
    const cases: Array<[unknown, string]> = [
      [{}, '(root): required targets'],
      [{ ...lun({}), logLevel: 'verbose' }, 'logLevel: enum'],
      [{ ...lun({}), portal: [] }, '(root): additionalProperties portal'],
      [lun({ sise: '8G' }), 'targets[0].luns[0]: additionalProperties sise'],
      [lun({ blockSize: 1024 }), 'targets[0].luns[0].blockSize: enum'],
      [lun({ lun: 16384 }), 'targets[0].luns[0].lun: maximum'],
      [lun({ size: '8X' }), 'targets[0].luns[0].size: anyOf'],
      [lun({ vendor: 'TOOLONGVENDOR' }), 'targets[0].luns[0].vendor: maxLength'],
      [lun({ naa: '5001405abcdef0123456789abcdef012' }), 'targets[0].luns[0].naa: pattern'],
      [{ targets: [{ iqn: 'iqn.2016-06.org.Gluster:x', luns: [{ lun: 0, path: '/a' }] }] }, 'targets[0].iqn: pattern'],
      [{ ...lun({}), iscsi: { headerDigest: ['CRC32C', 'CRC32C'] } }, 'iscsi.headerDigest: uniqueItems'],
      [{ ...lun({}), iscsi: { dataDigest: ['crc32c'] } }, 'iscsi.dataDigest[0]: enum'],
      [{ ...lun({}), portals: [{ address: '0.0.0.0:3260', port: 1 }] }, 'portals[0]: anyOf'],
    ];
    for (const [config, violation] of cases) {
      expect(violations(config, schema, schema), JSON.stringify(config)).toEqual([violation]);
      expect(() => parseConfig(config, '/etc', { env: {}, cwd: '/' }), JSON.stringify(config)).toThrow(ConfigError);
    }
  });

  it('accepts the forms the server accepts', async () => {
    const schema = await committedSchema();
    const target = (lun: Record<string, unknown>, rest: Record<string, unknown> = {}) => ({
      targets: [{ iqn: 'iqn.2016-06.org.gluster:node1', luns: [{ lun: 0, path: '/a.img', ...lun }], ...rest }],
    });
    const cases = [
      ...['8G', '8g', '1GiB', '100MB', '1.5G', '4096B', '16 M', 1048576].map((size) => target({ size })),
      target({ naa: '6001405ABCDEF0123456789ABCDEF012', blockSize: 4096, serial: 'SN 1' }),
      target({}, { acl: [{ initiator: '*' }, { initiator: 'eui.02004567a425678d', readOnly: true }], alias: 'node one' }),
      { ...target({}), portals: ['[::1]:3261', 'storage.example.com', { address: '0.0.0.0:3263', advertise: '10.0.2.100', tpgt: 7 }] },
      { ...target({}), iscsi: { headerDigest: ['CRC32C'], nopInInterval: 0, immediateData: false }, logLevel: 'debug', dataDir: 'state' },
    ];
    for (const config of cases) {
      expect(violations(config, schema, schema), JSON.stringify(config)).toEqual([]);
      expect(() => parseConfig(config, '/etc', { env: {}, cwd: '/' }), JSON.stringify(config)).not.toThrow();
    }
  });

  it('describes every field, and allows no field it does not list', async () => {
    const schema = await committedSchema();
    const undescribed: string[] = [];
    const open: string[] = [];
    const walk = (s: JsonSchema, at: string) => {
      if (s.type === 'object' && s.additionalProperties !== false) open.push(at);
      for (const [k, p] of Object.entries((s.properties ?? {}) as Record<string, JsonSchema>)) {
        if (typeof p.description !== 'string') undescribed.push(`${at}.${k}`);
        walk(p, `${at}.${k}`);
      }
      if (s.items) walk(s.items as JsonSchema, `${at}[]`);
      for (const o of (s.anyOf ?? []) as JsonSchema[]) walk(o, at);
    };
    walk(schema, '');
    for (const [name, def] of Object.entries(schema.$defs as Record<string, JsonSchema>)) walk(def, `$defs.${name}`);
    expect(undescribed).toEqual([]);
    expect(open).toEqual([]);
    expect(schema.required).toEqual(['targets']);
  });
});

describe('the config file format', () => {
  const minimal = { targets: [{ iqn: 'iqn.2016-06.org.gluster:node1', luns: [{ lun: 0, path: '/a.img' }] }] };

  it('accepts a "$schema" key (for editors) and ignores it', () => {
    const withSchema = parseConfig({ $schema: './target.schema.json', ...minimal }, '/etc', { env: {}, cwd: '/' });
    expect(withSchema).toEqual(parseConfig(minimal, '/etc', { env: {}, cwd: '/' }));
  });

  it('reports a field of the wrong type once, not also as too short', () => {
    try {
      parseConfig({ portals: '', targets: [{ iqn: 'iqn.2016-06.org.gluster:node1', luns: '' }] }, '/etc', { env: {}, cwd: '/' });
      expect.unreachable();
    } catch (e) {
      expect((e as ConfigError).issues).toEqual(['portals: expected a list, got ""', 'targets[0].luns: expected a list, got ""']);
    }
  });
});
