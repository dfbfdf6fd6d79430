// Spliced throughput: one 50 MiB message APPENDed straight to Dovecot, then IMAP FETCH and
// POP3 RETR of it through each target (plaintext both sides: the splice, not TLS, is what is
// measured), with the proxy's CPU per MB moved. Each run is one login and one transfer.
import type { DovecotUser } from '../test/helpers/dovecot.js';
import { loadgen, pctOf, round } from './lib.js';
import { cpuSeconds } from './procstat.js';

export interface TransferTarget {
  name: string;
  imapPort: number;
  pop3Port: number;
  pids: () => number[];
}

export interface TransferRow {
  proto: 'imap' | 'pop3';
  target: string;
  bytes: number;
  reps: number;
  medianMBps: number | null;
  bestMBps: number | null;
  cpuMsPerMB: number | null;
  loadgenCpuPct: number | null;
}

export async function seedBigMessage(port: number, user: DovecotUser, bytes: number): Promise<number> {
  const r = await loadgen({ mode: 'append', host: '127.0.0.1', port, users: [user], bytes });
  return r.bytes as number;
}

export async function transferPhase(targets: TransferTarget[], o: { reps: number; user: DovecotUser; log: (s: string) => void }): Promise<TransferRow[]> {
  const rows: TransferRow[] = [];
  const port = (t: TransferTarget, proto: 'imap' | 'pop3') => (proto === 'imap' ? t.imapPort : t.pop3Port);
  for (const proto of ['imap', 'pop3'] as const) {
    // Warm Dovecot's cache and the page cache once, unmeasured.
    await loadgen({ mode: 'transfer', proto, host: '127.0.0.1', port: port(targets[0]!, proto), users: [o.user], reps: 1 });
    const acc = new Map(targets.map((t) => [t.name, { mbps: [] as number[], cpu: 0, bytes: 0, loadgenCpu: 0 }]));
    // One transfer per target per round, targets rotated: a burst of outside load lands on
    // one round of every target rather than on all the runs of one.
    for (let r = 0; r < o.reps; r++) {
      for (let i = 0; i < targets.length; i++) {
        const t = targets[(i + r) % targets.length]!;
        const a = acc.get(t.name)!;
        const pids = t.pids();
        const cpu0 = cpuSeconds(pids);
        const res = await loadgen({ mode: 'transfer', proto, host: '127.0.0.1', port: port(t, proto), users: [o.user], reps: 1 });
        a.cpu += cpuSeconds(pids) - cpu0;
        a.mbps.push(res.runs[0].MBps as number);
        a.bytes = res.bytes as number;
        a.loadgenCpu = Math.max(a.loadgenCpu, res.loadgenCpuPct as number);
      }
    }
    for (const t of targets) {
      const a = acc.get(t.name)!;
      const sorted = [...a.mbps].sort((x, y) => x - y);
      const mb = (a.bytes * o.reps) / 1048576;
      rows.push({
        proto,
        target: t.name,
        bytes: a.bytes,
        reps: o.reps,
        medianMBps: round(pctOf(sorted, 50), 1),
        bestMBps: round(sorted.at(-1), 1),
        cpuMsPerMB: t.pids().length ? round((a.cpu * 1000) / mb, 2) : null,
        loadgenCpuPct: a.loadgenCpu,
      });
      o.log(`  transfer ${proto.padEnd(4)} ${t.name.padEnd(16)} ${rows.at(-1)!.medianMBps} MiB/s (median of ${o.reps})`);
    }
  }
  return rows;
}
