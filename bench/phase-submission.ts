// Submission throughput with and without the sending limits' tracker (issue 21): messages
// through mailgate's submission listener to Dovecot's submission service, which relays each
// to an SMTP sink in its own process. Three targets side by side: Dovecot straight, mailgate
// splicing (no limits.sending), mailgate tracking (limits.sending set high enough never to
// refuse). Two loads: many small messages over a few sessions, and a few large ones over one.
// Rounds rotate the targets; medians are reported, with the proxy's CPU per message and MiB.
import { spawn } from 'node:child_process';
import { execFile } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startDovecot, type DovecotUser } from '../test/helpers/dovecot.js';
import { freePorts } from '../test/helpers/ports.js';
import { pctOf, round } from './lib.js';
import { cpuSeconds } from './procstat.js';
import { startMailgate, type Proc } from './services.js';

const run = promisify(execFile);
const SENDER = new URL('./smtp-send.mjs', import.meta.url).pathname;
const SINK = new URL('./smtp-sink.mjs', import.meta.url).pathname;

export interface SubmissionLoad {
  name: string;
  sessions: number;
  messages: number;
  bytes: number;
}

export interface SubmissionRow {
  load: string;
  target: string;
  reps: number;
  medianMsgsPerSec: number | null;
  medianMBps: number | null;
  cpuMsPerMessage: number | null;
  cpuMsPerMB: number | null;
}

async function startSink(): Promise<{ port: number; stop(): void }> {
  const [port] = (await freePorts(1)) as [number];
  const child = spawn(process.execPath, [SINK, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  await lines.next();
  return { port, stop: () => child.kill('SIGTERM') };
}

async function send(port: number, users: DovecotUser[], load: SubmissionLoad) {
  const { stdout } = await run(process.execPath, [SENDER, JSON.stringify({ port, users, ...load })], { timeout: 600_000, maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as { messages: number; bytes: number; msgsPerSec: number; MBps: number };
}

export async function submissionPhase(o: { dir: string; loads: SubmissionLoad[]; reps: number; log: (s: string) => void }): Promise<SubmissionRow[]> {
  const users: DovecotUser[] = Array.from({ length: 4 }, (_, i) => ({ user: `sender${i}`, pass: `sender${i}-pass` }));
  const sink = await startSink();
  const dovecot = await startDovecot({ users, relay: { host: '127.0.0.1', port: sink.port } });
  const procs: Proc[] = [];
  try {
    const splice = await startMailgate({ name: 'mailgate-splice', dir: join(o.dir, 'submission'), dovecot, smtp: true });
    procs.push(splice);
    const big = 100_000_000;
    const tracked = await startMailgate({
      name: 'mailgate-tracked',
      dir: join(o.dir, 'submission'),
      dovecot,
      smtp: true,
      limits: { sending: { messagesPerDay: big, recipientsPerDay: big, newRecipientsPerDay: big } },
    });
    procs.push(tracked);
    const targets = [
      { name: 'direct', port: dovecot.ports.submission, pids: () => [] as number[] },
      { name: 'mailgate-splice', port: splice.ports.smtp!, pids: splice.pids },
      { name: 'mailgate-tracked', port: tracked.ports.smtp!, pids: tracked.pids },
    ];
    const rows: SubmissionRow[] = [];
    for (const load of o.loads) {
      await send(dovecot.ports.submission, users, { ...load, messages: Math.min(load.messages, 20) }); // warm, unmeasured
      const acc = new Map(targets.map((t) => [t.name, { rates: [] as number[], mbps: [] as number[], cpu: 0, messages: 0, bytes: 0 }]));
      for (let r = 0; r < o.reps; r++) {
        for (let i = 0; i < targets.length; i++) {
          const t = targets[(i + r) % targets.length]!;
          const a = acc.get(t.name)!;
          const cpu0 = cpuSeconds(t.pids());
          const res = await send(t.port, users, load);
          a.cpu += cpuSeconds(t.pids()) - cpu0;
          a.rates.push(res.msgsPerSec);
          a.mbps.push(res.MBps);
          a.messages += res.messages;
          a.bytes += res.bytes;
        }
      }
      for (const t of targets) {
        const a = acc.get(t.name)!;
        const own = t.pids().length > 0;
        rows.push({
          load: load.name,
          target: t.name,
          reps: o.reps,
          medianMsgsPerSec: round(pctOf([...a.rates].sort((x, y) => x - y), 50), 1),
          medianMBps: round(pctOf([...a.mbps].sort((x, y) => x - y), 50), 2),
          cpuMsPerMessage: own ? round((a.cpu * 1000) / a.messages, 3) : null,
          cpuMsPerMB: own ? round((a.cpu * 1000) / (a.bytes / 1048576), 2) : null,
        });
        const row = rows.at(-1)!;
        o.log(`  submission ${load.name.padEnd(6)} ${t.name.padEnd(17)} ${row.medianMsgsPerSec} msg/s ${row.medianMBps} MiB/s, CPU ${row.cpuMsPerMessage ?? '-'} ms/msg ${row.cpuMsPerMB ?? '-'} ms/MiB`);
      }
    }
    return rows;
  } finally {
    await Promise.allSettled(procs.map((p) => p.stop()));
    await dovecot.stop();
    sink.stop();
  }
}
