// The submission phase's sender: `sessions` concurrent SMTP sessions (EHLO, AUTH PLAIN), each
// sending its share of `messages` messages of `bytes` bytes as a pipelining client does (MAIL,
// RCPT and DATA in one write, the body after 354, the next message after the 250), then QUIT.
// Prints one JSON line: messages, bytes, seconds, msgsPerSec, MBps, loadgenCpuPct.
// Usage: node bench/smtp-send.mjs '{"port":…,"users":[{"user":…,"pass":…}],"sessions":4,"messages":400,"bytes":4096[,"rate":300]}'
import net from 'node:net';

const spec = JSON.parse(process.argv[2]);

/** A body of `bytes` bytes in lines of 76 characters, no line starting with a dot. */
function body(bytes, n) {
  const head = `Subject: bench ${n}\r\nMessage-ID: <${n}.${Date.now()}@bench>\r\n\r\n`;
  const line = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd\r\n';
  const lines = Math.max(1, Math.ceil((bytes - head.length) / line.length));
  return Buffer.from(head + line.repeat(lines) + '.\r\n');
}

/** Reads replies; resolves the next wait once `count` final reply lines (ddd SP) arrived. */
function replies(socket) {
  let buf = '';
  let want = null;
  socket.setEncoding('latin1');
  socket.on('data', (d) => {
    buf += d;
    check();
  });
  function check() {
    if (!want) return;
    const finals = buf.match(/^\d{3} .*\r\n/gm) ?? [];
    if (finals.length < want.count) return;
    const bad = finals.slice(0, want.count).find((l) => !/^[23]/.test(l));
    const w = want;
    want = null;
    buf = '';
    if (bad) w.reject(new Error(`unexpected reply: ${bad.trim()}`));
    else w.resolve();
  }
  return (count) =>
    new Promise((resolve, reject) => {
      want = { count, resolve, reject };
      check();
    });
}

async function session(user, count, offset) {
  const socket = net.connect({ host: '127.0.0.1', port: spec.port });
  await new Promise((r, j) => socket.once('connect', r).once('error', j));
  const wait = replies(socket);
  await wait(1);
  socket.write('EHLO bench.test\r\n');
  await wait(1);
  socket.write(`AUTH PLAIN ${Buffer.from(`\0${user.user}\0${user.pass}`).toString('base64')}\r\n`);
  await wait(1);
  let bytes = 0;
  // rate (messages/s over all sessions): an open-loop pace instead of as fast as replies come.
  const interval = spec.rate ? (1000 * spec.sessions) / spec.rate : 0;
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const due = start + i * interval;
    if (interval && performance.now() < due) await new Promise((r) => setTimeout(r, due - performance.now()));
    const b = body(spec.bytes, offset + i);
    socket.write(`MAIL FROM:<${user.user}@bench.test>\r\nRCPT TO:<to${(offset + i) % 50}@bench.test>\r\nDATA\r\n`);
    await wait(3);
    socket.write(b);
    await wait(1);
    bytes += b.length;
  }
  socket.write('QUIT\r\n');
  await wait(1);
  socket.destroy();
  return bytes;
}

const t0 = performance.now();
const cpu0 = process.cpuUsage();
const per = Math.ceil(spec.messages / spec.sessions);
const sent = await Promise.all(Array.from({ length: spec.sessions }, (_, i) => session(spec.users[i % spec.users.length], per, i * per)));
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const bytes = sent.reduce((a, b) => a + b, 0);
process.stdout.write(
  `${JSON.stringify({
    messages: per * spec.sessions,
    bytes,
    seconds,
    msgsPerSec: (per * spec.sessions) / seconds,
    MBps: bytes / 1048576 / seconds,
    loadgenCpuPct: Math.round(((cpu.user + cpu.system) / 1000 / (seconds * 1000)) * 100),
  })}\n`,
);
