/**
 * deploy/kubernetes/: the manifests parse, and what the initiators' side names (iqn, portal,
 * lun, read-only, CHAP user names and secrets) agrees with the example target config that the
 * DaemonSet serves, whose mounts, environment and probes agree with that config too. The example
 * config passes `glfs-target check` with the DaemonSet's Secret in place.
 */
import { describe, expect, test } from 'vitest';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseSize } from '../../src/config/size.js';
import { GLFS_BIN, REPO_ROOT, run, tempDir } from '../e2e/harness.js';

// eslint-style escape hatch for walking parsed manifests.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const DIR = join(REPO_ROOT, 'deploy', 'kubernetes');
const CONFIG_PATH = '/etc/glfs-target/target.json';

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? yamlFiles(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : []);
}

/** Every document of every manifest, with the file it came from. */
const docs: { file: string; doc: Obj }[] = yamlFiles(DIR).flatMap((file) =>
  parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${relative(REPO_ROOT, file)}: ${d.errors.map((e) => e.message).join('; ')}`);
    return { file: relative(DIR, file), doc: d.toJS() as Obj };
  }));
const config = JSON.parse(readFileSync(join(DIR, 'target.json'), 'utf8')) as Obj;
const targets = config.targets as Obj[];

const ofKind = (kind: string) => docs.filter((d) => d.doc.kind === kind);
const onlyOne = (kind: string): Obj => {
  const all = ofKind(kind);
  expect(all.map((d) => d.file), kind).toHaveLength(1);
  return all[0]!.doc;
};
const daemonSet = onlyOne('DaemonSet');
const podSpec = daemonSet.spec.template.spec as Obj;
const container = (podSpec.containers as Obj[])[0]!;
const mountOf = (volumeName: string): Obj => (container.volumeMounts as Obj[]).find((m) => m.name === volumeName)!;
const volumeAt = (mountPath: string): Obj => {
  const m = (container.volumeMounts as Obj[]).find((v) => v.mountPath === mountPath);
  expect(m, `a volume mounted at ${mountPath}`).toBeDefined();
  return (podSpec.volumes as Obj[]).find((v) => v.name === m!.name)!;
};
const targetSecrets = docs.filter((d) => d.doc.kind === 'Secret' && d.doc.metadata.namespace === daemonSet.metadata.namespace).map((d) => d.doc);

/** The value the DaemonSet gives a CHAP secret source of target.json (secretFile from the mounted Secret, secretEnv from the env). */
function targetSecretValue(source: Obj): string {
  let ref: { name: string; key: string };
  if (source.secretFile !== undefined) {
    const vol = volumeAt(dirname(source.secretFile));
    expect(vol.secret, `${source.secretFile} is in a mounted Secret`).toBeDefined();
    ref = { name: vol.secret.secretName, key: basename(source.secretFile) };
  } else {
    const env = (container.env as Obj[]).find((e) => e.name === source.secretEnv);
    expect(env?.valueFrom?.secretKeyRef, `env ${source.secretEnv} comes from a Secret`).toBeDefined();
    ref = env!.valueFrom.secretKeyRef;
  }
  const secret = targetSecrets.find((s) => s.metadata.name === ref.name);
  expect(secret, `Secret ${ref.name}`).toBeDefined();
  const value = secret!.stringData?.[ref.key] ?? (secret!.data?.[ref.key] !== undefined ? Buffer.from(secret!.data[ref.key], 'base64').toString() : undefined);
  expect(value, `${ref.name}/${ref.key}`).toBeTypeOf('string');
  return value as string;
}

/** Every iscsi volume source in the examples: pods' volumes and PersistentVolumes. */
const iscsiVolumes: { where: string; namespace: string; v: Obj }[] = docs.flatMap(({ file, doc }) => {
  if (doc.kind === 'Pod') return (doc.spec.volumes as Obj[]).filter((v) => v.iscsi).map((v) => ({ where: `${file} ${doc.metadata.name}/${v.name}`, namespace: doc.metadata.namespace ?? 'default', v: v.iscsi as Obj }));
  if (doc.kind === 'PersistentVolume' && doc.spec.iscsi) return [{ where: `${file} ${doc.metadata.name}`, namespace: '', v: doc.spec.iscsi as Obj }];
  return [];
});

describe('deploy/kubernetes manifests', () => {
  test('every manifest parses, and the examples the issue asks for are there', () => {
    expect(docs.length).toBeGreaterThanOrEqual(8);
    for (const { file, doc } of docs) {
      expect(doc.apiVersion, file).toMatch(/^(v1|apps\/v1|kustomize\.config\.k8s\.io\/v1beta1)$/);
      expect(doc.kind, file).toBeTypeOf('string');
    }
    // The seed's pod: lun 0, xfs, read-write; the two-LUN pod: ro ext4 LUN 0 and rw xfs LUN 1 of one target.
    const seed = iscsiVolumes.filter((x) => x.where.includes('glusterpod'));
    expect(seed.map((x) => [x.v.lun, x.v.fsType, x.v.readOnly])).toEqual([[0, 'xfs', false]]);
    const two = iscsiVolumes.filter((x) => x.where.includes('iscsipd'));
    expect(two.map((x) => [x.v.lun, x.v.fsType, x.v.readOnly])).toEqual([[0, 'ext4', true], [1, 'xfs', false]]);
    expect(new Set(two.map((x) => x.v.iqn)).size).toBe(1);
    const pv = onlyOne('PersistentVolume').spec.iscsi as Obj;
    expect(pv.chapAuthSession).toBe(true);
    expect(pv.secretRef.name).toBeTypeOf('string');
    expect(pv.portals.length).toBeGreaterThan(0);
  });

  test('every iscsi volume names a target, LUN and portal of target.json, read-only where the LUN is', () => {
    const ports = (config.portals as string[]).map((p) => Number(/:(\d+)$/.exec(p)![1]));
    expect(iscsiVolumes.length).toBeGreaterThanOrEqual(4);
    for (const { where, v } of iscsiVolumes) {
      const target = targets.find((t) => t.iqn === v.iqn);
      expect(target, `${where}: iqn ${v.iqn}`).toBeDefined();
      const lun = (target!.luns as Obj[]).find((l) => l.lun === v.lun);
      expect(lun, `${where}: lun ${v.lun}`).toBeDefined();
      expect(v.readOnly ?? false, `${where}: readOnly`).toBe(lun!.readOnly ?? false);
      const portals = [v.targetPortal as string, ...((v.portals as string[] | undefined) ?? [])];
      expect(new Set(portals).size, `${where}: distinct portals`).toBe(portals.length);
      for (const p of portals) {
        const m = /^([^:]+):(\d+)$/.exec(p);
        expect(m, `${where}: portal ${p} is host:port`).not.toBeNull();
        expect(ports, `${where}: portal ${p}`).toContain(Number(m![2]));
      }
    }
  });

  test('the examples\' CHAP (user names, secrets, mutual) is what target.json asks for', () => {
    expect(config.discovery?.chap, 'no discovery CHAP: the seed\'s pod discovers without a secret').toBeUndefined();
    for (const { where, namespace, v } of iscsiVolumes) {
      expect(v.chapAuthDiscovery ?? false, where).toBe(false);
      const acl = (targets.find((t) => t.iqn === v.iqn)!.acl as Obj[]).find((a) => a.initiator === (v.initiatorName ?? '*')) ?? {};
      expect(v.chapAuthSession ?? false, `${where}: chapAuthSession iff the ACL asks for CHAP`).toBe(acl.chap !== undefined);
      if (!v.chapAuthSession) continue;
      const ref = { name: v.secretRef.name as string, namespace: (v.secretRef.namespace as string | undefined) ?? namespace };
      const secret = docs.find((d) => d.doc.kind === 'Secret' && d.doc.metadata.name === ref.name && (d.doc.metadata.namespace ?? 'default') === ref.namespace)?.doc;
      expect(secret, `${where}: Secret ${ref.namespace}/${ref.name}`).toBeDefined();
      expect(secret!.type).toBe('kubernetes.io/iscsi-chap');
      const s = secret!.stringData as Obj;
      expect(s['node.session.auth.username']).toBe(acl.chap.username);
      expect(s['node.session.auth.password']).toBe(targetSecretValue(acl.chap));
      if (acl.chap.mutual) {
        expect(s['node.session.auth.username_in']).toBe(acl.chap.mutual.username);
        expect(s['node.session.auth.password_in']).toBe(targetSecretValue(acl.chap.mutual));
      }
    }
  });

  test('the PV\'s capacity is its LUN\'s size', () => {
    const pv = onlyOne('PersistentVolume');
    const lun = (targets.find((t) => t.iqn === pv.spec.iscsi.iqn)!.luns as Obj[]).find((l) => l.lun === pv.spec.iscsi.lun)!;
    expect(parseSize(pv.spec.capacity.storage.replace(/i$/, ''))).toBe(parseSize(lun.size));
  });

  test('the DaemonSet serves target.json: host network, the gluster mount from the host (HostToContainer), ConfigMap, Secret, probes', () => {
    expect(podSpec.hostNetwork).toBe(true);
    expect(container.args).toEqual(['serve', '--config', CONFIG_PATH]);
    expect(readFileSync(join(REPO_ROOT, 'docker', 'target.Dockerfile'), 'utf8')).toContain(`CMD ["serve", "--config", "${CONFIG_PATH}"]`);
    // The config: the kustomization's ConfigMap of target.json, mounted where --config points.
    const kustomization = onlyOne('Kustomization');
    const generated = (kustomization.configMapGenerator as Obj[]).find((g) => (g.files as string[]).includes('target.json'));
    expect(kustomization.generatorOptions.disableNameSuffixHash, 'updated in place, applied with SIGHUP').toBe(true);
    expect(volumeAt(dirname(CONFIG_PATH)).configMap.name).toBe(generated!.name);
    for (const d of docs.filter((x) => !x.file.startsWith('examples/') && x.doc.kind !== 'Kustomization')) {
      expect(kustomization.resources, d.file).toContain(d.file);
    }
    // Every LUN file is on the one gluster mount, a host path shared into the pod.
    const lunDirs = new Set(targets.flatMap((t) => (t.luns as Obj[]).map((l) => dirname(l.path as string))));
    expect([...lunDirs]).toHaveLength(1);
    const [lunDir] = lunDirs;
    const gluster = volumeAt(lunDir!);
    expect(gluster.hostPath.path).toBe(lunDir);
    expect(mountOf(gluster.name).mountPropagation).toBe('HostToContainer');
    expect(mountOf(gluster.name).readOnly ?? false).toBe(false);
    expect(readFileSync(join(REPO_ROOT, 'deploy', 'systemd', 'glfs-target.service'), 'utf8')).toContain(`RequiresMountsFor=${lunDir}`);
    // The control socket's directory is writable (the root file system is not).
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(volumeAt(dirname(config.controlSocket)).emptyDir).toBeDefined();
    // The portal's port, and the probes on the metrics listener.
    expect((container.ports as Obj[]).map((p) => p.containerPort)).toEqual((config.portals as string[]).map((p) => Number(/:(\d+)$/.exec(p)![1])));
    const [host, port] = (config.metrics.address as string).split(':');
    for (const probe of [container.readinessProbe, container.livenessProbe] as Obj[]) {
      expect([probe.httpGet.host, String(probe.httpGet.port)]).toEqual([host, port]);
    }
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    expect(container.securityContext.privileged).toBe(false);
    expect(container.securityContext.capabilities.add).toContain('NET_BIND_SERVICE');
  });

  test('target.json passes `glfs-target check` with the DaemonSet\'s secrets; on this machine only its gluster volume is missing', async () => {
    const tmp = tempDir('k8s-check-');
    try {
      // The Secret's files where the DaemonSet mounts them, moved under tmp; secretEnv from the env.
      const env: NodeJS.ProcessEnv = { ...process.env };
      const moved = JSON.parse(JSON.stringify(config), (key, value: unknown) => {
        if (key === 'secretFile' && typeof value === 'string') {
          const file = join(tmp.dir, value);
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(file, `${targetSecretValue({ secretFile: value })}\n`);
          return file;
        }
        if (key === 'secretEnv' && typeof value === 'string') env[value] = targetSecretValue({ secretEnv: value });
        return value;
      }) as Obj;
      const asIs = join(tmp.dir, 'target.json');
      writeFileSync(asIs, JSON.stringify(moved));
      const lunCount = targets.flatMap((t) => t.luns as Obj[]).length;
      const r = await run(process.execPath, [GLFS_BIN, 'check', '--config', asIs], { env });
      // Exit 1, not 2: every field is valid; what fails is that the LUN files' volume is not mounted here.
      const errors = r.stderr.split('\n').filter((l) => l.startsWith('error:') || /^targets|^portals|^discovery/.test(l));
      expect(errors, r.stderr).toHaveLength(lunCount);
      // The mount point is missing here, or (where it exists) nothing is mounted on it.
      for (const e of errors) expect(e).toMatch(/^error: (\/mnt\/gluster-store\/\S+ must be on gluster volume nonshared-store, but no gluster volume is mounted there|LUN \d+ \(\/mnt\/gluster-store\/\S+\): the directory \/mnt\/gluster-store does not exist)/);
      expect(r.code, r.stderr).toBe(1);
      // Without the volume guard (the one thing only a gluster node has) it passes.
      const unguarded = join(tmp.dir, 'unguarded.json');
      // …and the LUN files in a directory that exists here.
      writeFileSync(unguarded, JSON.stringify(moved, (key, value: unknown) => (key === 'volume' ? undefined
        : key === 'path' && typeof value === 'string' ? value.replace(/^\/mnt\/gluster-store\//, `${tmp.dir}/`) : value)));
      const ok = await run(process.execPath, [GLFS_BIN, 'check', '--config', unguarded], { env });
      expect(ok.code, ok.stderr).toBe(0);
      const effective = JSON.parse(ok.stdout) as Obj;
      expect((effective.targets as Obj[]).map((t) => t.iqn)).toEqual(targets.map((t) => t.iqn));
      expect(ok.stdout).not.toContain('example-db-secret-change-me');
    } finally {
      tmp.cleanup();
    }
  });
});
