// What the SHIPPED limits (config/mailgate.yaml) decide against the attacks operators face,
// at the policy: check and record with the backend's verdict played by the test (a password
// is right when it is the account's), the memory store on a ManualClock. The same scenarios
// run through the proxy against a real Dovecot, on both stores, in integration/defences.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/load.js';
import { lockoutRisks } from '../../src/config/lockout.js';
import { KeyBuilder } from '../../src/limits/keys.js';
import { Policy } from '../../src/limits/policy.js';
import { MemoryStore } from '../../src/stores/memory.js';

const shipped = loadConfig(new URL('../../config/mailgate.yaml', import.meta.url).pathname);

function world(attackMode: () => boolean = () => false) {
  const clock = new ManualClock();
  const store = new MemoryStore(clock);
  const policy = new Policy(shipped.limits, store, new KeyBuilder('defences-test-secret'), clock, attackMode);
  const passwords = new Map<string, string>();
  /** One login through the policy: did it reach the backend, and was it let in? */
  const login = async (ip: string, user: string, password: string) => {
    const d = await policy.check({ protocol: 'imap', ip, user, password: Buffer.from(password) });
    if (d.kind === 'refuse') return { reached: false, ok: false, rule: d.rule };
    const ok = passwords.get(user) === password;
    await policy.record(d, ok ? 'ok' : 'fail');
    return { reached: true, ok, rule: null };
  };
  return { clock, policy, passwords, login };
}

/** 127.n.m.1: one network per n (a /24 each), m selecting the /16 family of the scenario. */
const net = (family: number, n: number) => `10.${family}.${n}.1`;

describe('the shipped defaults', () => {
  it('lockout attempt: 150 wrong passwords from 150 networks; few reach the backend, the owner gets in from home and from a new network', async () => {
    const w = world();
    w.passwords.set('alice', 'right-horse');
    expect((await w.login('192.0.2.10', 'alice', 'right-horse')).ok).toBe(true); // home, yesterday
    w.clock.advance(3_600_000);
    let reached = 0;
    for (let i = 0; i < 150; i++) if ((await w.login(net(1, i), 'alice', `guess-${i}`)).reached) reached++;
    expect(reached).toBeLessThanOrEqual(10);
    expect(await w.login('192.0.2.10', 'alice', 'right-horse')).toMatchObject({ ok: true });
    expect(await w.login('198.51.100.77', 'alice', 'right-horse')).toMatchObject({ ok: true });
    // A stranger from a new network with a wrong password does not get to ask.
    expect(await w.login('203.0.113.78', 'alice', 'guess-x')).toMatchObject({ reached: false });
  });

  it('spraying: two common passwords once against each of 60 accounts, one network per try', async () => {
    const w = world();
    for (let u = 0; u < 60; u++) w.passwords.set(`user${u}`, `secret-${u}`);
    let reached = 0;
    let tries = 0;
    for (const pw of ['Summer2026!', 'Password1']) {
      for (let u = 0; u < 60; u++) if ((await w.login(net(2, tries++), `user${u}`, pw)).reached) reached++;
    }
    expect(reached / tries).toBeLessThanOrEqual(0.25);
  });

  it('an owner whose password is the sprayed one still gets in on a new network (its hint matches)', async () => {
    const w = world();
    w.passwords.set('carol', 'Password1');
    expect((await w.login('192.0.2.30', 'carol', 'Password1')).ok).toBe(true);
    for (let u = 0; u < 20; u++) await w.login(net(3, u), `user${u}`, 'Password1');
    expect(await w.login(net(3, 99), `user99`, 'Password1')).toMatchObject({ reached: false, rule: 'password-spray' });
    expect(await w.login('198.51.100.30', 'carol', 'Password1')).toMatchObject({ ok: true });
  });

  it('office NAT: 30 colleagues keep logging in while an infected machine behind the same address is stopped', async () => {
    const w = world();
    const office = '203.0.113.5';
    for (let u = 0; u < 30; u++) {
      w.passwords.set(`colleague${u}`, `pw-${u}`);
      expect((await w.login(office, `colleague${u}`, `pw-${u}`)).ok).toBe(true);
    }
    let machineReached = 0;
    for (let i = 0; i < 200; i++) if ((await w.login(office, `colleague${i % 40}`, `guess-${i}`)).reached) machineReached++;
    expect(machineReached).toBeLessThanOrEqual(20);
    let colleagues = 0;
    for (let u = 0; u < 30; u++) if ((await w.login(office, `colleague${u}`, `pw-${u}`)).ok) colleagues++;
    expect(colleagues).toBeGreaterThanOrEqual(29);
    // A colleague's first login ever from the office (no known-good pair) passes on the hint.
    w.passwords.set('newcomer', 'pw-new');
    expect((await w.login('192.0.2.99', 'newcomer', 'pw-new')).ok).toBe(true);
    expect((await w.login(office, 'newcomer', 'pw-new')).ok).toBe(true);
  });

  it('8 users logging in at once from one new address (no pairs, no hints yet) are all let through', async () => {
    // ip-spray (5 users failing per address) takes no reservation for logins in flight: many
    // users behind one NAT log in at once. (ip-failures does, up to its limit of 10 at once.)
    const w = world();
    for (let u = 0; u < 8; u++) w.passwords.set(`new${u}`, `pw-${u}`);
    const results = await Promise.all(Array.from({ length: 8 }, (_, u) => w.login('203.0.113.50', `new${u}`, `pw-${u}`)));
    expect(results.filter((r) => r.ok)).toHaveLength(8);
  });

  it('failures spreading over one /24 widen the key to the network; a success from it narrows it back', async () => {
    const w = world();
    w.passwords.set('dave', 'pw-dave');
    for (let i = 1; i <= 10; i++) await w.login(`10.9.9.${i}`, `victim${i}`, `wrong-${i}`);
    // An eleventh address of the /24 is refused for a stranger's guess…
    expect(await w.login('10.9.9.200', 'victim99', 'wrong-99')).toMatchObject({ reached: false, rule: 'net-failures' });
    // …while the owner of an account with the right password passes (hint), and narrows it back.
    await w.login('192.0.2.1', 'dave', 'pw-dave');
    expect(await w.login('10.9.9.201', 'dave', 'pw-dave')).toMatchObject({ ok: true });
    expect((await w.login('10.9.9.202', 'victim98', 'wrong-98')).reached).toBe(true);
  });

  it('attack mode: unknown pairs without a hint match are refused without the backend; known pairs and hint matches pass', async () => {
    const attack = { on: false };
    const w = world(() => attack.on);
    w.passwords.set('erin', 'pw-erin');
    w.passwords.set('frank', 'pw-frank');
    expect((await w.login('192.0.2.5', 'erin', 'pw-erin')).ok).toBe(true);
    attack.on = true;
    expect(await w.login('192.0.2.5', 'erin', 'pw-erin')).toMatchObject({ ok: true }); // known pair
    expect(await w.login('198.51.100.5', 'erin', 'pw-erin')).toMatchObject({ ok: true }); // hint
    expect(await w.login('203.0.113.6', 'erin', 'guess')).toMatchObject({ reached: false, rule: 'attack-mode' });
    // No pair, no hint yet (frank never logged in within the hint's lifetime): not now.
    expect(await w.login('192.0.2.6', 'frank', 'pw-frank')).toMatchObject({ reached: false, rule: 'attack-mode' });
    attack.on = false;
    expect(await w.login('192.0.2.6', 'frank', 'pw-frank')).toMatchObject({ ok: true });
  });

  it('says nothing in --check: no rule in it can lock an owner out', () => {
    expect(lockoutRisks(shipped.limits)).toEqual([]);
  });
});
