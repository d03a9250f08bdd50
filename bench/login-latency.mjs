// Login latency: TCP connect → Login Request (security + operational stages) → final Login
// Response (full feature phase), repeated; prints the median and 95th percentile.
//
//   node bench/login-latency.mjs [--port 3260] [--target IQN] [--count 200]
//
// Needs a running glfs-target (e.g. `node bin/glfs-target.js serve`). Each login is followed by
// a Logout so sessions do not pile up.
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '3260' },
    host: { type: 'string', default: '127.0.0.1' },
    target: { type: 'string', default: 'iqn.2016-06.org.gluster:glfs-target' },
    count: { type: 'string', default: '200' },
  },
});

function text(pairs) {
  return Buffer.from(pairs.map(([k, v]) => `${k}=${v}\0`).join(''));
}

function pdu(opcode, flags, fill, data = Buffer.alloc(0)) {
  const h = Buffer.alloc(48);
  h[0] = opcode;
  h[1] = flags;
  h[5] = (data.length >> 16) & 0xff;
  h[6] = (data.length >> 8) & 0xff;
  h[7] = data.length & 0xff;
  fill(h);
  const pad = Buffer.alloc((4 - (data.length % 4)) % 4);
  return Buffer.concat([h, data, pad]);
}

/** Read whole PDUs (no digests) from a socket. */
function reader(socket) {
  let buf = Buffer.alloc(0);
  const waiting = [];
  socket.on('data', (c) => {
    buf = Buffer.concat([buf, c]);
    for (;;) {
      if (buf.length < 48) return;
      const len = 48 + buf[4] * 4 + (((buf[5] << 16) | (buf[6] << 8) | buf[7]) + 3 & ~3);
      if (buf.length < len) return;
      const p = buf.subarray(0, len);
      buf = buf.subarray(len);
      waiting.shift()?.(p);
    }
  });
  return () => new Promise((resolve) => waiting.push(resolve));
}

async function oneLogin(i) {
  const t0 = process.hrtime.bigint();
  const socket = net.connect({ host: values.host, port: Number(values.port) });
  socket.setNoDelay(true);
  await new Promise((r, j) => socket.once('connect', r).once('error', j));
  const next = reader(socket);
  const isid = Buffer.from([0x80, 0, 0, 0, (i >> 8) & 0xff, i & 0xff]);
  const common = (h) => { isid.copy(h, 8); h.writeUInt32BE(1, 16); h.writeUInt32BE(1, 24); };
  socket.write(pdu(0x43, 0x81, common, text([
    ['InitiatorName', 'iqn.2007-10.com.example:login-bench'], ['SessionType', 'Normal'],
    ['TargetName', values.target], ['AuthMethod', 'None'],
  ])));
  let res = await next();
  if (res[36] !== 0) throw new Error(`login refused 0x${res[36].toString(16)}${res[37].toString(16)}`);
  socket.write(pdu(0x43, 0x87, common, text([
    ['HeaderDigest', 'None'], ['DataDigest', 'None'], ['MaxRecvDataSegmentLength', '262144'],
    ['InitialR2T', 'No'], ['ImmediateData', 'Yes'], ['MaxBurstLength', '262144'], ['FirstBurstLength', '65536'],
    ['MaxOutstandingR2T', '1'], ['ErrorRecoveryLevel', '0'], ['MaxConnections', '1'],
  ])));
  res = await next();
  const t1 = process.hrtime.bigint();
  if (res[36] !== 0 || (res[1] & 0x83) !== 0x83) throw new Error('login did not reach full feature phase');
  socket.write(pdu(0x46, 0x80, (h) => { h.writeUInt32BE(2, 16); h.writeUInt32BE(1, 24); }));
  await next();
  socket.destroy();
  return Number(t1 - t0) / 1e6;
}

const n = Number(values.count);
const times = [];
for (let i = 0; i < n; i++) times.push(await oneLogin(i));
times.sort((a, b) => a - b);
const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(2);
console.log(`login to full feature phase over ${n} logins: median ${q(0.5)} ms, p95 ${q(0.95)} ms, max ${q(1)} ms`);
