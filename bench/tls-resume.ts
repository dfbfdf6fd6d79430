// TLS session resumption (issue 22): CPU per STARTTLS login through mailgate with a full
// handshake against one resumed from the client's last session (loadgen `resume: true`), one
// process and 2 workers, TLS 1.3 and 1.2, closed loop (8 clients) and an open loop at a
// moderate rate (16 clients, each a phone reconnecting: its first login of a run is a full
// handshake, hence 'resumed' under 100%). Rounds interleave full and resumed.
// The certificate is the test one (EC P-256, whose signature is cheap); --cert=rsa gives
// mailgate an RSA-2048 one instead (a costlier signature, as many mail servers still serve).
// Run after `npm run build`: npx vite-node bench/tls-resume.ts [--rounds=N] [--seconds=S] [--rate=R] [--cert=rsa]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { loadgen, loopbackSources, round } from './lib.js';
import { cpuSplit } from './procstat.js';
import { benchUsers, startMailgate, startTunedDovecot, type Proc } from './services.js';

const argv = process.argv.slice(2);
const arg = (name: string) => Number(argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1]) || undefined;
const ROUNDS = arg('rounds') ?? 3;
const SECONDS = arg('seconds') ?? 3;
/** The open loop's rate: well below saturation, where each login pays its wake-ups alone. */
const RATE = arg('rate') ?? 150;

interface Load {
  name: string;
  /** Source addresses: one client each (its own TLS session). */
  clients: number;
  spec: Record<string, unknown>;
}
const loads: Load[] = ['TLSv1.3', 'TLSv1.2'].flatMap((maxVersion) => [
  { name: `${maxVersion} closed c=8`, clients: 8, spec: { concurrency: 8, maxVersion } },
  { name: `${maxVersion} open ${RATE}/s`, clients: 16, spec: { rate: RATE, maxInflight: 64, maxVersion } },
]);

interface Acc {
  cpu: number;
  sys: number;
  ok: number;
  sessions: number;
  resumed: number;
  seconds: number;
}

async function once(t: Proc, load: Load, resume: boolean, users: ReturnType<typeof benchUsers>, acc: Acc): Promise<void> {
  const sources = loopbackSources(load.clients, 7);
  const c0 = cpuSplit(t.pids());
  const r = await loadgen({ mode: 'logins', host: '127.0.0.1', port: t.ports.imap, tls: 'starttls', users, sources, warmupMs: 300, durationMs: SECONDS * 1000, resume, ...load.spec });
  const c1 = cpuSplit(t.pids());
  acc.cpu += c1.user + c1.sys - c0.user - c0.sys;
  acc.sys += c1.sys - c0.sys;
  acc.ok += r.ok;
  // Closed loop: every session, warm-up included, is what the CPU delta paid for.
  acc.sessions += r.sessionsAll ?? r.total;
  acc.resumed += r.resumed;
  acc.seconds += r.seconds;
  if (r.total !== r.ok) console.error(`  ${t.name} ${load.name}: ${r.total - r.ok} failed`, r.samples);
}

const dir = mkdtempSync(join(os.tmpdir(), 'mailgate-bench-resume-'));
const users = benchUsers(64);
const dovecot = await startTunedDovecot(users);
if (argv.includes('--cert=rsa')) {
  // Over the files the mailgates are configured with (Dovecot has read its own already).
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'rsa', keySize: 2048 });
  writeFileSync(dovecot.cert.certPath, pems.cert);
  writeFileSync(dovecot.cert.keyPath, pems.private, { mode: 0o600 });
}
const targets = [await startMailgate({ name: 'mailgate-1-process', dir, dovecot }), await startMailgate({ name: 'mailgate-2-workers', dir, dovecot, workers: 2 })];
const accs = new Map<string, Acc>();
try {
  console.log(`certificate: ${argv.includes('--cert=rsa') ? 'RSA 2048' : 'EC P-256'}; ${ROUNDS} rounds of ${SECONDS} s per cell`);
  console.log(`load average before: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  for (let r = 0; r < ROUNDS; r++) {
    for (const load of loads) {
      for (const t of r % 2 ? [...targets].reverse() : targets) {
        for (const resume of r % 2 ? [true, false] : [false, true]) {
          const k = `${t.name}|${load.name}|${resume ? 'resumed' : 'full'}`;
          if (!accs.has(k)) accs.set(k, { cpu: 0, sys: 0, ok: 0, sessions: 0, resumed: 0, seconds: 0 });
          await once(t, load, resume, users, accs.get(k)!);
        }
      }
    }
    console.log(`round ${r + 1}/${ROUNDS} done, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  }
  console.log('\n| target | load | handshake | logins/s | resumed | CPU ms/login (system) |');
  console.log('|---|---|---|---|---|---|');
  for (const [k, a] of accs) {
    const [target, load, kind] = k.split('|');
    const cpu = `${round((a.cpu * 1000) / a.sessions, 3)} (${round((a.sys * 1000) / a.sessions, 3)})`;
    console.log(`| ${target} | ${load} | ${kind} | ${round(a.ok / a.seconds, 0)} | ${round((100 * a.resumed) / a.ok, 1)}% | ${cpu} |`);
  }
  console.log(`\nload average after: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
} finally {
  for (const t of targets) await t.stop();
  await dovecot.stop();
  rmSync(dir, { recursive: true, force: true });
}
