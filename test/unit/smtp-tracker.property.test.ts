// Property tests for the post-AUTH SMTP tracker (issue 21) against a model SMTP server written
// here: the model reads the forwarded stream its own simple way (whole buffer, regexes) and
// answers as a server would (MAIL/RCPT accepted or refused at random, 354 or 554 to DATA,
// one reply per BDAT chunk). The client adapts to the model's replies as a real client does
// (it sends a body only after 354). Streams and replies are cut anywhere, down to every byte.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SmtpTracker, type Piece, type SmtpCommand, type TrackerEvent } from '../../src/protocols/smtp/tracker.js';
import { chunk, chunkingArb, fuzz, FUZZ_TIMEOUT_MS, type Chunking } from '../helpers/fuzz.js';

const R451 = '451 4.7.1 Sending limit reached\r\n';
/** Cases per property: each is a whole session cut several ways; a few seconds in all. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 600);

/** The model's random choices, keyed so that refusing MAIL/RCPT upstream does not shift them. */
interface Decisions {
  accept: Map<string, boolean>; // MAIL and RCPT, by path (unique per session)
  data: { ok: boolean; final: boolean }[]; // by DATA ordinal
  chunks: boolean[]; // by BDAT ordinal
}

interface ModelReply {
  text: string;
  /** Forwarded bytes the model must have read before it can send this reply. */
  after: number;
  /** DATA's reply and the final reply to a body or BDAT LAST: nothing may pass them. */
  gate?: boolean;
}

interface ModelRun {
  commands: SmtpCommand[];
  /** Replies grouped per command, in command order (DATA: 354 and the final reply). */
  groups: ModelReply[][];
  accepted: string[][];
  /** Unknown commands and overlong lines, in order. */
  unknown: string[];
  /** The transaction still open at the end of the stream (its accepted recipients). */
  open: string[] | null;
}

/** Dovecot: a verb of at most 32 letters, a space, at most 4 KiB of parameters, CRLF. */
const LONGEST_COMMAND = 32 + 1 + 4096 + 2;

const reply = (code: number, multi: boolean) => (multi ? `${code}-model says\r\n${code} ${code} indeed\r\n` : `${code} model\r\n`);

/** The model: a plain reading of the whole stream, stateful as a submission server is. */
function model(stream: Buffer, d: Decisions): ModelRun {
  const run: ModelRun = { commands: [], groups: [], accepted: [], unknown: [], open: null };
  let txn: string[] | null = null;
  let failedChunk = false;
  let nData = 0;
  let nBdat = 0;
  let pos = 0;
  const path = (params: string, kw: string) => {
    const m = new RegExp(`^${kw}:[ ]*<((?:"(?:[^"\\\\]|\\\\.)*"|[^>"])*)>`, 'i').exec(params);
    return m ? m[1]! : '';
  };
  for (;;) {
    run.open = txn && [...txn];
    const lf = stream.indexOf(0x0a, pos);
    if (lf < 0) return run;
    const long = lf + 1 - pos > LONGEST_COMMAND;
    const line = stream.toString('utf8', pos, lf + 1);
    pos = lf + 1;
    const [, verbRaw = '', params = ''] = /^([A-Za-z]*)(?: ([^\r\n]*))?\r?\n$/.exec(line) ?? [];
    const verb = verbRaw.toUpperCase();
    const group: ModelReply[] = [];
    const answer = (code: number, multi = false, gate = false) => group.push({ text: reply(code, multi), after: pos, gate });
    run.groups.push(group);
    if (long) {
      run.unknown.push('(line too long)');
      answer(500);
    } else if (verb === 'MAIL') {
      const p = path(params, 'FROM');
      run.commands.push({ verb, path: p });
      const ok = txn === null && d.accept.get(p) === true;
      if (ok) txn = [];
      answer(txn === null || ok ? (ok ? 250 : 550) : 503, p.length % 2 === 0);
    } else if (verb === 'RCPT') {
      const p = path(params, 'TO');
      run.commands.push({ verb, path: p });
      const ok = txn !== null && d.accept.get(p) === true;
      if (ok) txn!.push(p);
      answer(ok ? 250 : txn ? 550 : 503, p.length % 3 === 0);
    } else if (verb === 'DATA') {
      run.commands.push({ verb });
      const dec = d.data[nData++]!;
      if (!txn?.length || !dec.ok) {
        answer(554, false, true);
        continue;
      }
      answer(354, false, true);
      const end = /(?:^|\n)\.\r?\n/.exec(stream.toString('latin1', pos));
      if (!end) return run;
      pos += end.index + end[0].length;
      answer(dec.final ? 250 : 552, true, true);
      if (dec.final) run.accepted.push(txn);
      txn = null;
    } else if (verb === 'BDAT') {
      const [, size = '0', last] = /^(\d+)(?: (LAST))?$/i.exec(params) ?? [];
      run.commands.push({ verb, size: Number(size), last: last !== undefined });
      if (stream.length < pos + Number(size)) return run;
      pos += Number(size);
      const ok: boolean = !!txn?.length && !failedChunk && d.chunks[nBdat++] === true;
      failedChunk ||= !ok;
      answer(ok ? 250 : 552, nBdat % 2 === 0, last !== undefined);
      if (last === undefined) continue;
      if (ok) run.accepted.push(txn!);
      txn = null;
      failedChunk = false;
    } else if (verb === 'RSET' || verb === 'EHLO') {
      run.commands.push(verb === 'RSET' ? { verb } : { verb: 'OTHER', name: verb, known: true });
      txn = null;
      failedChunk = false;
      answer(250, verb === 'EHLO');
    } else if (verb === 'NOOP') {
      run.commands.push({ verb: 'OTHER', name: verb, known: true });
      answer(params.length > 4096 ? 500 : 250);
    } else {
      run.commands.push({ verb: 'OTHER', name: verb, known: false });
      run.unknown.push(verb);
      answer(500);
    }
  }
}

type Op =
  | { k: 'mail' | 'rcpt'; style: number; accept: boolean }
  | { k: 'data'; ok: boolean; final: boolean; body: string[]; seps: string[]; term: number }
  | { k: 'bdat'; chunks: string[]; last: boolean; oks: boolean[]; lastCase: boolean }
  | { k: 'rset' | 'noop' | 'ehlo' | 'unknown'; lf: boolean }
  | { k: 'long'; n: number };

/** Body lines a tracker could mistake for commands or an end, and plain text. */
const TRICKY = ['MAIL FROM:<evil@x>', 'RCPT TO:<evil@y>', 'DATA', 'BDAT 5 LAST', 'RSET', '.', '..', '.x', '. ', '', ' .', 'héllo wörld', '\r.\r', 'QUIT'];
const lineArb = fc.oneof(fc.constantFrom(...TRICKY), fc.string({ maxLength: 30 }));
const sepArb = fc.constantFrom('\r\n', '\r\n', '\n', '\r');
/** Mostly yes: sessions should carry messages through to the end. */
const likely = fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) });
const envelopeArb = (k: 'mail' | 'rcpt') => fc.record({ k: fc.constant(k), style: fc.nat(4), accept: likely });
const dataArb = fc.record({ k: fc.constant('data' as const), ok: likely, final: likely, body: fc.array(lineArb, { maxLength: 8 }), seps: fc.array(sepArb, { minLength: 8, maxLength: 8 }), term: fc.nat(3) });
const bdatArb = fc.record({
  k: fc.constant('bdat' as const),
  chunks: fc.array(fc.array(fc.oneof(fc.constantFrom('\r\n.\r\n', '\n.\n', 'MAIL FROM:<x@y>\r\n', 'BDAT 3\r\n'), lineArb)).map((a) => a.join('')), { minLength: 1, maxLength: 3 }),
  last: likely,
  oks: fc.array(likely, { minLength: 3, maxLength: 3 }),
  lastCase: fc.boolean(),
});
const miscArb = fc.record({ k: fc.constantFrom('rset' as const, 'noop' as const, 'ehlo' as const, 'unknown' as const), lf: fc.boolean() });
/** NOOP with about 4 KiB of parameters: either side of Dovecot's bounds. */
const longArb = fc.record({ k: fc.constant('long' as const), n: fc.integer({ min: 4090, max: 4140 }) });
const anyOpArb: fc.Arbitrary<Op> = fc.oneof(envelopeArb('mail'), envelopeArb('rcpt'), dataArb, bdatArb, miscArb, longArb);
/** A transaction as clients send it (MAIL, RCPTs, DATA or BDATs), or a few ops in any order. */
const blockArb: fc.Arbitrary<Op[]> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.array(miscArb, { maxLength: 1 }), envelopeArb('mail'), fc.array(envelopeArb('rcpt'), { minLength: 1, maxLength: 4 }), fc.oneof(dataArb, dataArb, bdatArb, miscArb)).map(([pre, mail, rcpts, end]) => [...pre, mail, ...rcpts, end]) },
  { weight: 1, arbitrary: fc.array(anyOpArb, { maxLength: 4 }) },
);
const opsArb = fc.array(blockArb, { maxLength: 5 }).map((blocks) => blocks.flat());

/** MAIL/RCPT lines in the spellings clients use, with 8BITMIME/SMTPUTF8/DSN parameters. */
function envelopeLine(k: 'mail' | 'rcpt', style: number, id: number): { line: string; path: string } {
  const path = [`u${id}@example.org`, `"u ${id}>x"@example.org`, `ü${id}@exämple.org`, `U${id}@Example.ORG`, `u${id}@b`][style % 5]!;
  const kw = k === 'mail' ? ['MAIL FROM:', 'mail from: ', 'MAIL FROM:'][style % 3] : ['RCPT TO:', 'rcpt to: ', 'RCPT TO:'][style % 3];
  const params = k === 'mail' ? ['', ' BODY=8BITMIME SMTPUTF8 SIZE=123', ' SIZE=1'][style % 3] : ['', ' NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y', ''][style % 3];
  return { line: `${kw}<${path}>${params}${style === 4 ? '\n' : '\r\n'}`, path };
}

interface Session {
  stream: Buffer;
  /** Expected forwarded stream: the client stream without the refused command lines. */
  forwarded: Buffer;
  commands: SmtpCommand[];
  refused: boolean[];
  /** Per line that gets a reply (commands, overlong lines): refused by the splice. */
  slots: boolean[];
  decisions: Decisions;
}

/** Builds the client stream, asking the model (over what was forwarded so far) how DATA
 *  was answered before sending a body, as a client waits for 354. */
function build(ops: Op[], refuse: (id: number) => boolean): Session {
  const d: Decisions = { accept: new Map(), data: [], chunks: [] };
  const parts: { bytes: Buffer; refused: boolean }[] = [];
  const commands: SmtpCommand[] = [];
  const refused: boolean[] = [];
  const slots: boolean[] = [];
  const add = (text: string, command?: SmtpCommand, no = false, slot = command !== undefined) => {
    parts.push({ bytes: Buffer.from(text, 'utf8'), refused: no });
    if (command) (commands.push(command), refused.push(no));
    if (slot) slots.push(no);
  };
  const forwarded = () => Buffer.concat(parts.filter((p) => !p.refused).map((p) => p.bytes));
  ops.forEach((op, id) => {
    if (op.k === 'mail' || op.k === 'rcpt') {
      const { line, path } = envelopeLine(op.k, op.style, id);
      d.accept.set(path, op.accept);
      add(line, { verb: op.k === 'mail' ? 'MAIL' : 'RCPT', path }, refuse(id));
    } else if (op.k === 'data') {
      d.data.push({ ok: op.ok, final: op.final });
      add('DATA\r\n', { verb: 'DATA' });
      if (model(forwarded(), d).groups.at(-1)![0]!.text.startsWith('354')) add(body(op));
    } else if (op.k === 'bdat') {
      op.chunks.forEach((c, i) => {
        const last = op.last && i === op.chunks.length - 1;
        d.chunks.push(op.oks[i]!);
        const size = Buffer.byteLength(c);
        add(`BDAT ${size}${last ? (op.lastCase ? ' LAST' : ' last') : ''}\r\n`, { verb: 'BDAT', size, last });
        add(c);
      });
    } else if (op.k === 'long') {
      const line = `NOOP ${'x'.repeat(op.n)}\r\n`;
      add(line, line.length > LONGEST_COMMAND ? undefined : { verb: 'OTHER', name: 'NOOP', known: true }, false, true);
    } else if ('lf' in op) {
      const name = { rset: 'RSET', noop: 'NOOP', ehlo: 'EHLO', unknown: 'XYZZY' }[op.k];
      const command: SmtpCommand = op.k === 'rset' ? { verb: 'RSET' } : { verb: 'OTHER', name, known: op.k !== 'unknown' };
      add(`${op.k === 'ehlo' ? 'EHLO client.example' : name}${op.lf ? '\n' : '\r\n'}`, command);
    }
  });
  return { stream: Buffer.concat(parts.map((p) => p.bytes)), forwarded: forwarded(), commands, refused, slots, decisions: d };
}

/** A body as a client sends it: dot-stuffed (after every LF, not after a lone CR), then a
 *  terminator in one of the spellings Dovecot ends a body at. */
function body(op: Extract<Op, { k: 'data' }>): string {
  const text = op.body.map((l, i) => l + op.seps[i]!).join('');
  const stuffed = text.replace(/(^|\n)\./g, '$1..');
  if (stuffed === '' || stuffed.endsWith('\n')) return stuffed + ['.\r\n', '.\n'][op.term % 2];
  return stuffed + ['\r\n.\r\n', '\n.\n', '\r\n.\n', '\n.\r\n'][op.term]!;
}

interface Outcome {
  forwarded: Buffer;
  toClient: Buffer;
  commands: SmtpCommand[];
  forwardedCommands: SmtpCommand[];
  events: TrackerEvent[];
  lost: boolean;
  stuck: boolean;
  /** Bytes past DATA or a final dot that reached the backend before the reply to it. */
  early: number;
  transaction: readonly string[] | null;
}

/** Drives the tracker as the splice does; the backend sends a reply only once it has read
 *  what the reply answers. `turns` picks client or backend when both could move. */
function drive(s: Session, refuse: (c: SmtpCommand) => boolean, clientCut: Chunking, replyCut: Chunking, turns: boolean[]): Outcome {
  const t = new SmtpTracker();
  const replies = model(s.forwarded, s.decisions).groups.flat();
  const out: Outcome = { forwarded: Buffer.alloc(0), toClient: Buffer.alloc(0), commands: [], forwardedCommands: [], events: [], lost: false, stuck: false, early: 0, transaction: null };
  const toBackend: Buffer[] = [];
  const toClient: Buffer[] = [];
  let backendRead = 0;
  let fed = 0;
  let replyBytes = 0;
  const gates = replies.map((r) => ({ ...r, end: (replyBytes += Buffer.byteLength(r.text)) })).filter((r) => r.gate);
  const handle = (pieces: Piece[]) => {
    for (const p of pieces) {
      if (p.command) out.commands.push(p.command);
      if (p.command && refuse(p.command)) {
        const now = t.refuse(p, Buffer.from(R451));
        if (now) toClient.push(now);
        continue;
      }
      if (p.command) (t.forward(p), out.forwardedCommands.push(p.command));
      toBackend.push(p.bytes);
      backendRead += p.bytes.length;
      if (gates.some((g) => g.after < backendRead && g.end > fed)) out.early++;
    }
  };
  const clientChunks = chunk(s.stream, clientCut);
  let nextReply = 0;
  let pendingReply = Buffer.alloc(0);
  let replyChunks: Buffer[] = [];
  for (let turn = 0; ; turn++) {
    while (nextReply < replies.length && replies[nextReply]!.after <= backendRead) pendingReply = Buffer.concat([pendingReply, Buffer.from(replies[nextReply++]!.text)]);
    if (!replyChunks.length && pendingReply.length) (replyChunks = chunk(pendingReply, replyCut)), (pendingReply = Buffer.alloc(0));
    const clientCan = clientChunks.length > 0 && !t.holding;
    if (!clientCan && !replyChunks.length) {
      out.stuck = clientChunks.length > 0 || nextReply < replies.length;
      break;
    }
    if (clientCan && (!replyChunks.length || turns[turn % turns.length])) handle(t.fromClient(clientChunks.shift()!));
    else {
      const bytes = replyChunks.shift()!;
      fed += bytes.length;
      const r = t.fromBackend(bytes);
      toClient.push(...r.toClient);
      out.events.push(...r.events);
      if (r.release) handle(t.fromClient(Buffer.alloc(0)));
    }
  }
  return { ...out, forwarded: Buffer.concat(toBackend), toClient: Buffer.concat(toClient), lost: t.lost, transaction: t.transaction && [...t.transaction.recipients] };
}

const caseArb = fc.record({
  ops: opsArb,
  clientCut: chunkingArb,
  replyCut: chunkingArb,
  turns: fc.array(fc.boolean(), { minLength: 1, maxLength: 16 }),
  refusedIds: fc.uniqueArray(fc.nat(30), { maxLength: 6 }),
});

type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

/** Checks properties (1)-(5) for one case; `withRefusals`: the splice refuses some MAIL/RCPT. */
function check(c: Case, withRefusals: boolean): void {
  const refusedIds = new Set(withRefusals ? c.refusedIds : []);
  const s = build(c.ops, (id) => refusedIds.has(id));
  const refusedPaths = new Set(s.commands.flatMap((cmd, i) => (s.refused[i] && 'path' in cmd ? [cmd.path] : [])));
  const o = drive(s, (cmd) => 'path' in cmd && refusedPaths.has(cmd.path), c.clientCut, c.replyCut, c.turns);
  const m = model(o.forwarded, s.decisions);
  // (5) never lost, never stuck on a valid stream
  expect(o.lost).toBe(false);
  expect(o.stuck).toBe(false);
  expect(o.early).toBe(0);
  // (1) forwarded = the client's bytes minus exactly the refused command lines
  expect(o.forwarded.equals(s.forwarded)).toBe(true);
  // (3) the tracker's commands are the client's, and the forwarded ones are the model's
  expect(o.commands).toEqual(s.commands);
  expect(o.forwardedCommands).toEqual(m.commands);
  // (2) the client gets the model's replies, our 451s in the refused commands' places
  let g = 0;
  const expected = s.slots.map((no) => (no ? R451 : m.groups[g++]!.map((r) => r.text).join(''))).join('');
  expect(o.toClient.toString('utf8')).toBe(expected);
  // (4) accepted messages and their recipients, as the model accepted them
  expect(o.transaction).toEqual(m.open);
  expect(o.events.filter((e) => e.type === 'accepted').map((e) => (e as { recipients: string[] }).recipients)).toEqual(m.accepted);
  expect(o.events.filter((e) => e.type === 'unknown')).toEqual(m.unknown.map((name) => ({ type: 'unknown', name })));
}

describe('SMTP tracker against a model server', () => {
  it('every command forwarded: bytes, replies, commands and accepted messages match the model', async () => {
    await fuzz(fc.property(caseArb, (c) => check(c, false)), RUNS);
  }, FUZZ_TIMEOUT_MS);

  it('some MAIL/RCPT refused with 451: removed from the stream, their replies in their places', async () => {
    await fuzz(fc.property(caseArb, (c) => check(c, true)), RUNS);
  }, FUZZ_TIMEOUT_MS);
});
