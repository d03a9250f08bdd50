/**
 * The optional HTTP listener for monitoring (config `metrics`; loopback unless told otherwise):
 *   GET /metrics   Prometheus text format (src/ops/metrics.ts)
 *   GET /healthz   200 while the process serves HTTP at all (liveness)
 *   GET /readyz    200 when every LUN is online, else 503 naming those that are not (readiness)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

/** Which LUNs are not online ("iqn LUN n: why"); empty when all are. */
export type Readiness = () => Promise<string[]>;

export class MonitoringListener {
  private constructor(private readonly server: http.Server) {}

  static async listen(at: { host: string; port: number }, registry: Registry, notReady: Readiness, log: Logger): Promise<MonitoringListener> {
    const server = http.createServer((req, res) => {
      void answer(req, res, registry, notReady).catch((err: unknown) => {
        log.error({ err, url: req.url }, 'monitoring request failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('internal error\n');
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: at.host, port: at.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => log.error({ err }, 'monitoring listener error'));
    const a = server.address() as AddressInfo;
    log.info({ address: a.address, port: a.port }, 'metrics and health listening (/metrics, /healthz, /readyz)');
    return new MonitoringListener(server);
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

async function answer(req: http.IncomingMessage, res: http.ServerResponse, registry: Registry, notReady: Readiness): Promise<void> {
  const text = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return text(405, 'method not allowed\n');
  }
  switch (new URL(req.url ?? '/', 'http://localhost').pathname) {
    case '/metrics':
      return text(200, await registry.metrics(), registry.contentType);
    case '/healthz':
      return text(200, 'ok\n');
    case '/readyz': {
      const problems = await notReady();
      return problems.length === 0 ? text(200, 'ready\n') : text(503, `not ready:\n${problems.map((p) => `  ${p}\n`).join('')}`);
    }
    default:
      return text(404, 'not found: try /metrics, /healthz or /readyz\n');
  }
}
