// `npm run bench -- --only=attacks`: the attacks operators face (issue 14) against the config as
// shipped, in front of a real Dovecot with its auth penalty on. Per scenario: a fresh in-process
// mailgate, simulated hours of ordinary life, the attack with a trickle of legitimate logins
// measuring latency, then the owners' logins. Counts come from mailgate's auth.attempt lines,
// never from timing. bench/report.mjs renders the result (attacksTable, attackTargets).
import type { Config } from '../src/config/schema.js';
import { ClientProcess, shippedConfig, startScenarioProxy, startStockDovecot, DOVECOT_SETUP, SHIPPED_CONFIG, waitForLines, type ClientResult } from './attack-rig.js';
import { attackBlock, SCENARIOS, type AttackRun, type AttackSettings, type Scenario } from './attack-scenarios.js';
import { attackTally, latency, login, makeWorld, ordinaryLife, ownerChecks, type Ctx, type World, type WorldSizes } from './attack-world.js';
import { round, sleep } from './lib.js';
import { watchStalls } from './stalls.js';

export interface AttacksSettings extends AttackSettings {
  world: WorldSizes;
  life: { batches: number; stepMin: number; typoEvery: number; concurrency: number };
  /** Legitimate logins per second, measured alone and during each attack. */
  trickleRate: number;
  unloadedMs: number;
  /** Longest wait for the attack's last log lines (a tarpitted answer is logged when it leaves). */
  logWaitMs: number;
}

const FULL: AttacksSettings = {
  world: { targets: 150, colleagues: 30, trickle: 20 },
  life: { batches: 4, stepMin: 40, typoEvery: 20, concurrency: 20 },
  trickleRate: 20,
  unloadedMs: 10_000,
  logWaitMs: 70_000,
  concurrency: 40,
  giveUpMs: 5000,
  spreadMs: 10_000,
  ownerSample: 5,
  lockout: { networks: 150 },
  oneShot: { networks: 300 },
  spray: { accounts: 60, passwords: 2 },
  stuffing: { pairs: 150, correct: 5, perNetwork: 2 },
  nat: { guesses: 200, accounts: 50, concurrency: 10 },
  lowSlow: { days: 3, stepHours: 3, accounts: 3, perHour: 2, residentsPerRound: 10, roundSpreadMs: 1000 },
};

/** --quick: smaller attacks and fewer simulated days; the office keeps its 30 colleagues. */
export const ATTACK_SETTINGS: { quick: AttacksSettings; full: AttacksSettings } = {
  full: FULL,
  quick: {
    ...FULL,
    world: { ...FULL.world, targets: 60, trickle: 10 },
    life: { ...FULL.life, batches: 3, stepMin: 60 },
    unloadedMs: 5000,
    spreadMs: 5000,
    ownerSample: 3,
    lockout: { networks: 60 },
    oneShot: { networks: 100 },
    spray: { accounts: 30, passwords: 2 },
    stuffing: { pairs: 60, correct: 3, perNetwork: 2 },
    nat: { ...FULL.nat, guesses: 80, accounts: 20 },
    lowSlow: { ...FULL.lowSlow, days: 1, stepHours: 4, accounts: 2, residentsPerRound: 6 },
  },
};

interface Env {
  world: World;
  s: AttacksSettings;
  /** Attackers, life and owners in one process; the latency trickle in its own, so its
   *  timings never wait behind the attackers' TLS work. */
  clients: ClientProcess;
  trickleClients: ClientProcess;
  log: (s: string) => void;
}

/** One scenario on a fresh mailgate: ordinary life, latency alone, the attack with the trickle
 *  running, the attack's last log lines, then the owners (and colleagues) logging in. */
async function runScenario(env: Env, cfg: Config, sc: Scenario, k: number) {
  const { world, s } = env;
  const t0 = Date.now();
  const stages: Record<string, number> = {};
  let tStage = t0;
  const stage = (name: string) => {
    stages[name] = round((Date.now() - tStage) / 1000, 1)!;
    tStage = Date.now();
  };
  const proxy = await startScenarioProxy(cfg);
  try {
    const ctx: Ctx = { world, proxy, clients: env.clients, log: env.log };
    const logins = world.trickle.map((a) => login(world, a));
    const life = await ordinaryLife(ctx, s.life);
    stage('life');
    const alone = await env.trickleClients.trickle(proxy.target, logins, s.trickleRate);
    await sleep(s.unloadedMs);
    const unloaded = latency(await alone.stop());
    stage('unloaded');
    const before = await sc.around?.(ctx);
    const from = proxy.lines.length;
    const simBefore = proxy.simulatedMs();
    // GC pauses and event-loop lag in this process (mailgate's) while the latency is measured:
    // what a slow trickle sample coincides with.
    const stopWatch = watchStalls();
    const trickle = await env.trickleClients.trickle(proxy.target, logins, s.trickleRate);
    let run: AttackRun;
    let loaded: ClientResult[];
    try {
      run = await sc.run(ctx, s, attackBlock(k));
    } finally {
      loaded = await trickle.stop();
    }
    const stalls = stopWatch();
    stage('attack');
    const isAttack = run.isAttack;
    const sent = run.results.filter((r) => r.loginSent).length;
    const complete = await waitForLines(proxy.lines, (ls) => ls.slice(from).filter((l) => l.event === 'auth.attempt' && isAttack(l)).length, sent, s.logWaitMs);
    stage('logDrain');
    const { reachedLines, ...attack } = attackTally(proxy.lines, from, isAttack, run.results);
    const after = await sc.around?.(ctx);
    const owners = await ownerChecks(ctx, sc.owners(world, s));
    stage('owners');
    const underAttack = latency(loaded);
    const wrong = run.wrongUsers;
    const wrongReached = wrong ? reachedLines.filter((l) => wrong.has(l.user ?? '')).length : 0;
    return {
      scenario: sc.name,
      title: sc.title,
      seconds: round((Date.now() - t0) / 1000, 1),
      stageSeconds: stages,
      simulatedHours: round((life.simulatedMin + (proxy.simulatedMs() - simBefore) / 60_000) / 60, 1),
      life,
      attack: { ...attack, logComplete: complete },
      ...(wrong ? { wrongPairs: { attempts: wrong.size, reached: wrongReached, reachedPct: round((wrongReached / wrong.size) * 100, 1) } } : {}),
      owners,
      ...(before && after && run.during ? { colleagues: { before, during: run.during, after } } : {}),
      stalls,
      latency: { unloaded, underAttack, p99Ratio: unloaded.p99ms && underAttack.p99ms !== null ? round(underAttack.p99ms / unloaded.p99ms) : null },
    };
  } finally {
    await proxy.stop();
  }
}

/** `scenarios`: names to run (default all), e.g. from `--attacks=spray,office-nat`. */
export async function attacksPhase(o: { quick: boolean; log: (s: string) => void; scenarios?: string[] }) {
  const s = o.quick ? ATTACK_SETTINGS.quick : ATTACK_SETTINGS.full;
  const world = makeWorld(s.world);
  const dovecot = await startStockDovecot(world.accounts);
  const env: Env = { world, s, clients: new ClientProcess(), trickleClients: new ClientProcess(), log: o.log };
  const rows = [];
  try {
    const { cfg, doc } = await shippedConfig(dovecot);
    o.log(`  ${SHIPPED_CONFIG}: rules ${JSON.stringify(doc.limits?.rules?.map((r: { name: string }) => r.name) ?? [])}; Dovecot ${dovecot.ports.imap}, auth penalty on`);
    for (const [k, sc] of SCENARIOS.entries()) {
      if (o.scenarios && !o.scenarios.includes(sc.name)) continue;
      const r = await runScenario(env, cfg, sc, k);
      rows.push(r);
      o.log(
        `  ${sc.name.padEnd(13)} ${r.attack.attempts} attempts, ${r.attack.reached} reached the backend (${r.attack.reachedPct}%), ${r.attack.accountsEntered} accounts entered; ` +
          `owners home ${r.owners.home.ok}/${r.owners.home.of}, new network ${r.owners.newNetwork.ok}/${r.owners.newNetwork.of}` +
          `${r.colleagues ? `; colleagues ${r.colleagues.during.ok}/${r.colleagues.during.of} during` : ''}; ` +
          `p99 ${r.latency.underAttack.p99ms} vs ${r.latency.unloaded.p99ms} ms; ${r.stalls.length} GC pauses or stalls >= 5 ms (longest ${Math.max(0, ...r.stalls.map((x) => x.ms))} ms) ` +
          `(${r.seconds} s: ${JSON.stringify(r.stageSeconds)})`,
      );
    }
  } finally {
    await Promise.allSettled([env.clients.close(), env.trickleClients.close()]);
    await dovecot.stop();
  }
  return {
    config: 'config/mailgate.yaml as shipped (listeners, backends, certificate and admin address rewritten)',
    dovecot: DOVECOT_SETUP,
    settings: s,
    rows,
  };
}
