/**
 * What `serve` runs beside the iSCSI server once it has started: the control socket
 * (`glfs-target status`, `glfs-target reload`) and, when configured, the metrics and health listener.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { EffectiveConfig } from '../config/types.js';
import type { IscsiServer } from '../iscsi/server.js';
import { ControlSocket } from './control-socket.js';
import { createMetricsRegistry } from './metrics.js';
import { MonitoringListener } from './monitoring-listener.js';
import { serverStatus, type StatusSource } from './server-status.js';

export interface OperationsContext {
  readonly config: EffectiveConfig;
  readonly version: string;
  readonly configFile: string | null;
  readonly startedAt: Date;
  readonly log: Logger;
  /** Reload the config file (`glfs-target reload`); serve sets it once its signal handling is in place. */
  reload?: () => Promise<unknown>;
}

export interface Operations {
  /** Where the metrics listener is bound, when there is one. */
  readonly metricsAddress: AddressInfo | undefined;
  close(): Promise<void>;
}

/**
 * Open the control socket (a failure is logged and serving goes on: status is a convenience,
 * the LUNs are not) and the metrics listener (a failure rejects: it was asked for).
 */
export async function startOperations(server: IscsiServer, ctx: OperationsContext): Promise<Operations> {
  const source: StatusSource = { server, version: ctx.version, startedAt: ctx.startedAt, configFile: ctx.configFile };
  const control = await ControlSocket.listen(ctx.config.controlSocket, {
    status: () => serverStatus(source),
    reload: () => (ctx.reload !== undefined ? ctx.reload() : Promise.reject(new Error('this server cannot reload its configuration'))),
  }, ctx.log).then(
    (c) => {
      ctx.log.info({ socket: c.path }, 'control socket listening (glfs-target status)');
      return c;
    },
    (err: unknown) => {
      ctx.log.warn({ err, socket: ctx.config.controlSocket }, `control socket unavailable, glfs-target status cannot reach this server: ${(err as Error).message}`);
      return undefined;
    },
  );
  let monitoring: MonitoringListener | undefined;
  if (ctx.config.metrics !== undefined) {
    try {
      monitoring = await MonitoringListener.listen(ctx.config.metrics, createMetricsRegistry(source), () => lunsNotOnline(source), ctx.log);
    } catch (err) {
      await control?.close();
      throw new Error(`metrics listener on ${ctx.config.metrics.host}:${ctx.config.metrics.port}: ${(err as Error).message}`, { cause: err });
    }
  }
  return {
    metricsAddress: monitoring?.address(),
    async close() {
      await Promise.all([control?.close(), monitoring?.close()]);
    },
  };
}

/** "iqn LUN n: why" for every LUN that is not online. */
async function lunsNotOnline(source: StatusSource): Promise<string[]> {
  const status = await serverStatus(source);
  return status.targets.flatMap((t) =>
    t.luns.filter((l) => !l.online).map((l) => {
      const why = l.alua.state === 'transitioning' || l.alua.state === 'unavailable' ? `ALUA ${l.alua.state}` : 'persisted reservation state unusable (NOT READY)';
      return `${t.iqn} LUN ${l.lun}: ${why}`;
    }),
  );
}
