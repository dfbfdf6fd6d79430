// Where mailgate's CPU goes per login: a separate mailgate process under `node --cpu-prof`,
// driven by 64 concurrent LOGIN+LOGOUT clients (plain, then STARTTLS), then by the
// many-address flood with legitimate logins beside it; summarised by bench/profile-top.mjs.
// Profiled runs are slower; they are never used for the figures.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DovecotInstance, DovecotUser } from '../test/helpers/dovecot.js';
import { loadgen, loopbackSources, sleep } from './lib.js';
import { printSummary, summarise } from './profile-top.mjs';
import { startMailgate } from './services.js';

export interface ProfileOptions {
  dir: string;
  dovecot: DovecotInstance;
  users: DovecotUser[];
  seconds: number;
  redisUrl?: string;
  log: (s: string) => void;
}

type Scenario = 'plain' | 'starttls' | 'flood';

async function drive(scenario: Scenario, port: number, o: ProfileOptions): Promise<void> {
  const base = { mode: 'logins', host: '127.0.0.1', port, users: o.users };
  if (scenario !== 'flood') {
    await loadgen({ ...base, tls: scenario === 'plain' ? 'none' : 'starttls', concurrency: 64, warmupMs: 500, durationMs: o.seconds * 1000, sources: loopbackSources(64) });
    return;
  }
  const attack = loadgen({ ...base, tls: 'none', rate: 500, durationMs: o.seconds * 1000 + 1000, sources: loopbackSources(1000, 3), wrongPassword: true, maxInflight: 2000 });
  await sleep(1000);
  await loadgen({ ...base, tls: 'none', rate: 50, durationMs: o.seconds * 1000, sources: loopbackSources(20) });
  await attack;
}

export async function profilePhase(o: ProfileOptions) {
  const out: Record<string, ReturnType<typeof summarise> & { file: string }> = {};
  for (const scenario of ['plain', 'starttls', 'flood'] as const) {
    const name = `profile-${o.redisUrl ? 'redis' : 'memory'}-${scenario}`;
    const profileDir = join(o.dir, name);
    const mg = await startMailgate({ name, dir: o.dir, dovecot: o.dovecot, profileDir, ...(o.redisUrl ? { redisUrl: o.redisUrl } : {}) });
    try {
      await drive(scenario, mg.ports.imap, o);
    } finally {
      await mg.stop();
    }
    const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) {
      o.log(`  profile ${name}: no .cpuprofile written`);
      continue;
    }
    const s = summarise(JSON.parse(readFileSync(join(profileDir, file), 'utf8')), 15);
    out[name] = { ...s, file: join(profileDir, file) };
    o.log(`  profile ${name}:\n${printSummary(s).replace(/^/gm, '    ')}`);
  }
  return out;
}
