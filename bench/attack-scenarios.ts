// The six attacks of the attack benchmark (issue 14), each as the attempts an attacker makes
// and how its log lines are told apart from everyone else's. Every attacker network is its own
// /24 in the scenario's block (attack-world.ts BLOCKS); the office NAT is one address.
import type { ClientResult, LogLine } from './attack-rig.js';
import { BLOCKS, COMMON_PASSWORDS, judge, login, network, OFFICE_CONCURRENCY, tally, type Account, type Ctx, type Tally, type World } from './attack-world.js';

export interface AttackSettings {
  /** Attack attempts in flight at once (distributed attacks). */
  concurrency: number;
  /** An attacker abandons an answer slower than this (mailgate still decides and logs it). */
  giveUpMs: number;
  /** A one-go attack is spread over at least this long (sustained, so the latency trickle
   *  meets it), however fast mailgate answers. Low-and-slow paces itself by rounds. */
  spreadMs: number;
  /** Owners checked per scenario (of the accounts attacked). */
  ownerSample: number;
  lockout: { networks: number };
  oneShot: { networks: number };
  spray: { accounts: number; passwords: number };
  stuffing: { pairs: number; correct: number; perNetwork: number };
  nat: { guesses: number; accounts: number; concurrency: number };
  /** Each round's guesses are spread over roundSpreadMs (no burst of TLS logins). */
  lowSlow: { days: number; stepHours: number; accounts: number; perHour: number; residentsPerRound: number; roundSpreadMs: number };
}

export interface AttackRun {
  results: ClientResult[];
  /** Which auth.attempt lines are the attacker's. */
  isAttack: (l: LogLine) => boolean;
  /** Users whose attacked pair was wrong (credential stuffing: the target counts only these). */
  wrongUsers?: Set<string>;
  /** Logins judged while the attack runs (the office NAT: the colleagues). */
  during?: Tally;
}

export interface Scenario {
  name: string;
  title: string;
  /** Logins judged right before and right after the attack, outside the latency window
   *  (the office NAT: every colleague once). */
  around?(ctx: Ctx): Promise<Tally>;
  /** Whose logins are checked after the attack. */
  owners(w: World, s: AttackSettings): Account[];
  run(ctx: Ctx, s: AttackSettings, block: number): Promise<AttackRun>;
}

const pace = (s: AttackSettings) => ({ giveUpMs: s.giveUpMs, spreadMs: s.spreadMs });

const fromSources = (sources: string[]) => {
  const set = new Set(sources);
  return (l: LogLine) => set.has(l.ip ?? '');
};

/** Evenly spread sample of `n` accounts. */
const sample = (accounts: Account[], n: number) => (accounts.length <= n ? accounts : Array.from({ length: n }, (_, i) => accounts[Math.floor((i * accounts.length) / n)]!));

/** One wrong password per network against one account. */
async function oneAccountManyNetworks(ctx: Ctx, s: AttackSettings, block: number, networks: number): Promise<AttackRun> {
  const owner = ctx.world.targets[0]!;
  const attempts = Array.from({ length: networks }, (_, i) => ({ source: network(block, i), user: owner.user, pass: `guess-${i}-${owner.user}` }));
  const results = await ctx.clients.batch(ctx.proxy.target, attempts, s.concurrency, pace(s));
  return { results, isAttack: fromSources(attempts.map((a) => a.source)) };
}

const lockout: Scenario = {
  name: 'lockout',
  title: 'Lockout attempt on one account',
  owners: (w) => [w.targets[0]!],
  run: (ctx, s, block) => oneAccountManyNetworks(ctx, s, block, s.lockout.networks),
};

const oneShot: Scenario = {
  name: 'one-shot',
  title: 'Distributed one-shot brute force on one account',
  owners: (w) => [w.targets[0]!],
  run: (ctx, s, block) => oneAccountManyNetworks(ctx, s, block, s.oneShot.networks),
};

/** Each common password once against every account, one network per try. */
const spray: Scenario = {
  name: 'spray',
  title: 'Password spraying across networks',
  owners: (w, s) => sample(w.targets.slice(0, s.spray.accounts), s.ownerSample),
  async run(ctx, s, block) {
    const accounts = ctx.world.targets.slice(0, s.spray.accounts);
    const attempts = COMMON_PASSWORDS.slice(0, s.spray.passwords).flatMap((pass, p) =>
      accounts.map((a, i) => ({ source: network(block, p * accounts.length + i), user: a.user, pass })),
    );
    const results = await ctx.clients.batch(ctx.proxy.target, attempts, s.concurrency, pace(s));
    return { results, isAttack: fromSources(attempts.map((a) => a.source)) };
  },
};

/** Which pairs of the leaked list still hold the right password, spread over it. */
const rightPairs = ({ pairs, correct }: AttackSettings['stuffing']) => new Set(Array.from({ length: correct }, (_, j) => Math.floor(((j + 0.5) * pairs) / correct)));

/** A leaked list of (user, password) pairs, a few still right, two tries per network. Owners
 *  checked: a sample of the list, and one whose leaked password is still right. */
const stuffing: Scenario = {
  name: 'stuffing',
  title: 'Credential stuffing with a few right pairs',
  owners: (w, s) => [...sample(w.targets.slice(0, s.stuffing.pairs), s.ownerSample - 1), w.targets[[...rightPairs(s.stuffing)][0]!]!],
  async run(ctx, s, block) {
    const { pairs, perNetwork } = s.stuffing;
    const right = rightPairs(s.stuffing);
    const attempts = ctx.world.targets.slice(0, pairs).map((a, i) => ({
      source: network(block, Math.floor(i / perNetwork)),
      user: a.user,
      pass: right.has(i) ? a.pass : `${a.user}-leaked-2019`,
    }));
    const results = await ctx.clients.batch(ctx.proxy.target, attempts, s.concurrency, pace(s));
    const wrongUsers = new Set(attempts.filter((_, i) => !right.has(i)).map((a) => a.user));
    return { results, isAttack: fromSources(attempts.map((a) => a.source)), wrongUsers };
  },
};

/** Colleagues behind the office NAT log in (each once), judged one by one. Right before and
 *  after the attack they come at once; during it they arrive over `spreadMs`, as an office's
 *  mail clients do (all 30 within half a second would be 4x the latency trickle's rate, and
 *  the trickle would measure that burst of ordinary logins rather than the attack). */
async function colleagueWave(ctx: Ctx, spreadMs = 0): Promise<Tally> {
  const w = ctx.world;
  const attempts = w.colleagues.map((a) => login(w, a));
  const from = ctx.proxy.lines.length;
  const results = await ctx.clients.batch(ctx.proxy.target, attempts, OFFICE_CONCURRENCY, { spreadMs });
  return tally(judge(ctx.proxy.lines, from, attempts, results), results);
}

/** One infected machine behind the office address tries common passwords over many accounts
 *  (none of them its colleagues'), while the colleagues keep logging in from the same address. */
const nat: Scenario = {
  name: 'office-nat',
  title: 'Office NAT with an infected machine',
  owners: (w, s) => sample(w.targets.slice(0, s.nat.accounts), s.ownerSample),
  around: (ctx) => colleagueWave(ctx),
  async run(ctx, s) {
    const w = ctx.world;
    const { guesses, accounts, concurrency } = s.nat;
    const attempts = Array.from({ length: guesses }, (_, g) => ({
      source: w.office,
      user: w.targets[g % accounts]!.user,
      pass: COMMON_PASSWORDS[Math.floor(g / accounts) % COMMON_PASSWORDS.length]!,
    }));
    const half = Math.floor(guesses / 2);
    const halfPace = { giveUpMs: s.giveUpMs, spreadMs: s.spreadMs / 2 };
    const first = await ctx.clients.batch(ctx.proxy.target, attempts.slice(0, half), concurrency, halfPace);
    const [second, during] = await Promise.all([ctx.clients.batch(ctx.proxy.target, attempts.slice(half), concurrency, halfPace), colleagueWave(ctx, halfPace.spreadMs)]);
    const colleagues = new Set(w.colleagues.map((a) => a.user));
    return { results: [...first, ...second], isAttack: (l) => l.ip === w.office && !colleagues.has(l.user ?? ''), during };
  },
};

/** A few guesses per hour per account, each from a network not used before, over simulated
 *  days; ordinary life goes on between the rounds (owners from home, other residents). */
const lowSlow: Scenario = {
  name: 'low-and-slow',
  title: 'Low-and-slow over days',
  owners: (w, s) => w.targets.slice(0, s.lowSlow.accounts),
  async run(ctx, s, block) {
    const w = ctx.world;
    const { days, stepHours, accounts, perHour, residentsPerRound, roundSpreadMs } = s.lowSlow;
    const targets = w.targets.slice(0, accounts);
    const residents = [...w.targets.slice(accounts), ...w.trickle];
    const rounds = Math.round((days * 24) / stepHours);
    const results: ClientResult[] = [];
    const sources: string[] = [];
    for (let r = 0; r < rounds; r++) {
      if (r > 0) ctx.proxy.advance(stepHours * 3_600_000);
      // Every guess from a network never used before.
      const attempts = targets.flatMap((a) =>
        Array.from({ length: perHour * stepHours }, (_, g) => {
          const source = network(block, sources.length);
          sources.push(source);
          return { source, user: a.user, pass: `slow-${r}-${g}-${a.user}` };
        }),
      );
      const life = [...(r % 2 === 0 ? targets : []), ...Array.from({ length: residentsPerRound }, (_, i) => residents[(r * residentsPerRound + i) % residents.length]!)];
      const [res] = await Promise.all([
        ctx.clients.batch(ctx.proxy.target, attempts, s.concurrency, { giveUpMs: s.giveUpMs, spreadMs: roundSpreadMs }),
        ctx.clients.batch(ctx.proxy.target, life.map((a) => login(w, a)), 2, { spreadMs: roundSpreadMs }),
      ]);
      results.push(...res);
    }
    return { results, isAttack: fromSources(sources) };
  },
};

export const SCENARIOS: Scenario[] = [lockout, oneShot, spray, stuffing, nat, lowSlow];

/** The attacker block of the k-th scenario (its networks never meet another scenario's). */
export const attackBlock = (k: number) => BLOCKS.attack(k);
