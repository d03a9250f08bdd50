/**
 * Prometheus metrics of a running server (prom-client). The I/O path counts into plain numbers
 * (src/iscsi/io-stats.ts: a few additions per command); they become metrics only when scraped,
 * through each metric's collect(). Every series is listed in docs/operating.md.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';
import { LATENCY_BOUNDS_SECONDS, type IoCounters } from '../iscsi/io-stats.js';
import type { IscsiServer } from '../iscsi/server.js';
import type { IoKind } from '../scsi/io-kind.js';
import { serverStatus, type StatusSource } from './server-status.js';

type Labels = Record<string, string>;
type Series = Array<[Labels, number]>;

const KINDS: readonly IoKind[] = ['read', 'write', 'other'];

/** The I/O counters of every LUN of every target, with their labels. */
function lunCounters(server: IscsiServer): Array<{ labels: Labels; kind: IoKind; counters: IoCounters }> {
  return server.targetNodes().flatMap((t) =>
    t.definition.luns.flatMap((l) => {
      const stats = t.ioStats(l.lun);
      return stats === undefined ? [] : KINDS.map((kind) => ({ labels: { target: t.iqn, lun: String(l.lun), op: kind }, kind, counters: stats.of(kind) }));
    }),
  );
}

export function createMetricsRegistry(source: StatusSource): Registry {
  const { server } = source;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const counter = (name: string, help: string, labelNames: string[], series: () => Series) =>
    new Counter({
      name, help, labelNames, registers: [registry],
      collect() {
        this.reset();
        for (const [labels, value] of series()) this.inc(labels, value);
      },
    });
  const gauge = (name: string, help: string, labelNames: string[], series: () => Series | Promise<Series>) =>
    new Gauge({
      name, help, labelNames, registers: [registry],
      async collect() {
        this.reset();
        for (const [labels, value] of await series()) this.set(labels, value);
      },
    });

  counter('glfs_target_lun_commands_total', 'SCSI commands completed, by LUN and kind (read: READ; write: commands that change logical block data; other)',
    ['target', 'lun', 'op'], () => lunCounters(server).map((c) => [c.labels, c.counters.commands]));
  counter('glfs_target_lun_bytes_total', 'Data carried by completed commands: read data sent, write data received',
    ['target', 'lun', 'op'], () => lunCounters(server).filter((c) => c.kind !== 'other').map((c) => [c.labels, c.counters.bytes]));
  counter('glfs_target_lun_command_failures_total', 'Commands that did not succeed, by reason: the sense key of a CHECK CONDITION or the status',
    ['target', 'lun', 'op', 'reason'], () => lunCounters(server).flatMap((c) => [...c.counters.failures].map(([reason, n]): [Labels, number] => [{ ...c.labels, reason }, n])));
  registry.registerMetric(latencyHistogram(server) as unknown as Metric);

  const snapshot = () => serverStatus(source);
  gauge('glfs_target_lun_online', '1 while the LUN is served (persisted state usable, this node active or standby), else 0', ['target', 'lun'], async () =>
    (await snapshot()).targets.flatMap((t) => t.luns.map((l): [Labels, number] => [{ target: t.iqn, lun: String(l.lun) }, l.online ? 1 : 0])));
  gauge('glfs_target_lun_owned', '1 while this node owns the LUN and serves its I/O (ALUA active/optimized), else 0', ['target', 'lun'], async () =>
    (await snapshot()).targets.flatMap((t) => t.luns.map((l): [Labels, number] => [{ target: t.iqn, lun: String(l.lun) }, l.owner === server.node.name ? 1 : 0])));
  gauge('glfs_target_sessions', 'Sessions in full feature phase, by target ("" for discovery) and type', ['target', 'type'], () => {
    const byTarget = new Map<string, [Labels, number]>(server.targetNodes().map((t) => [`Normal ${t.iqn}`, [{ target: t.iqn, type: 'Normal' }, 0]]));
    for (const { session } of server.liveSessions()) {
      const target = session.target?.iqn ?? '';
      const entry = byTarget.get(`${session.type} ${target}`) ?? [{ target, type: session.type }, 0];
      byTarget.set(`${session.type} ${target}`, [entry[0], entry[1] + 1]);
    }
    return [...byTarget.values()];
  });
  counter('glfs_target_logins_total', 'Logins that established a session, by session type', ['type'], () => [...server.logins.succeeded].map(([type, n]) => [{ type }, n]));
  counter('glfs_target_login_refusals_total', 'Logins refused, by reason: the login status (authentication-failure, authorization-failure, not-found, …), login-timeout, too-many-logins, too-many-logins-from-address',
    ['reason'], () => [...server.logins.refused].map(([reason, n]) => [{ reason }, n]));
  gauge('glfs_target_data_in_flight_bytes', 'Command data held in memory now (write data not yet in the file, read data not yet sent)', [], () => [[{}, server.dataBudget.inUse]]);
  gauge('glfs_target_data_in_flight_limit_bytes', 'Most command data all connections may hold (iscsi.maxDataInFlight)', [], () => [[{}, server.dataBudget.limit]]);
  return registry;
}

const LATENCY_NAME = 'glfs_target_lun_command_duration_seconds';

/**
 * The latency histogram, from the buckets the I/O path keeps (prom-client's Histogram can only be
 * fed one observation at a time, which would cost the I/O path a microsecond per command). It
 * answers the registry as prom-client's own histograms do: _bucket (cumulative, le), _sum, _count.
 */
function latencyHistogram(server: IscsiServer) {
  return {
    name: LATENCY_NAME,
    help: 'Command latency from the SCSI Command PDU to its status, by LUN and kind (a write includes the time its data took to arrive)',
    type: 'histogram',
    aggregator: 'sum',
    collect: undefined,
    async get() {
      const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
      for (const { labels, counters } of lunCounters(server)) {
        let cumulative = 0;
        LATENCY_BOUNDS_SECONDS.forEach((le, i) => {
          cumulative += counters.latency[i]!;
          values.push({ labels: { ...labels, le }, value: cumulative, metricName: `${LATENCY_NAME}_bucket` });
        });
        values.push({ labels: { ...labels, le: '+Inf' }, value: counters.commands, metricName: `${LATENCY_NAME}_bucket` });
        values.push({ labels, value: counters.seconds, metricName: `${LATENCY_NAME}_sum` });
        values.push({ labels, value: counters.commands, metricName: `${LATENCY_NAME}_count` });
      }
      return { name: LATENCY_NAME, help: this.help, type: this.type, aggregator: this.aggregator, values };
    },
  };
}
