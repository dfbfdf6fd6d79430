// `mailgate admin …`: the admin API from the command line. Prints JSON; exit 0 on 2xx,
// 1 when the API answers with an error, 2 on usage errors.
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import { ATTACK_MODES } from '../limits/attack-mode.js';

export const ADMIN_USAGE = `usage: mailgate admin COMMAND [--url URL] [--token TOKEN | env MAILGATE_ADMIN_TOKEN] [--config FILE]
  limits  --ip IP | --user NAME     counters, limits and blocks for an IP and/or user
  reset   --ip IP | --user NAME     reset those counters and blocks
  blocks                            keys currently refused
  groups                            address groups: sources, sizes, when files were read
  history --user NAME               the account's login history (network, protocol, result)
  sending --user NAME [--reset [--known]]
                                    the account's sending counts against limits.sending; --reset
                                    starts them again (--known: forget its recipients too)
  unblock IP-OR-USER                lift a block (and reset its counters)
  unblock --user-hash HASH          lift an account's blocks by the hash \`blocks\` lists
  block   IP-OR-USER --for 1h [--rule NAME]
                                    block by hand on the rules keyed on it (or the one named)
  attack-mode [on|off|auto]         attack mode status; on or off forces it until auto
  sessions                          live sessions after login (every worker)
  kick    --user NAME | --ip IP     end that user's or address's live sessions on every instance
  nodes                             every live instance (host, pid, version, workers, sessions, state)`;

export async function adminMain(argv: string[], out: (s: string) => void): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        token: { type: 'string' },
        config: { type: 'string', short: 'c' },
        ip: { type: 'string' },
        user: { type: 'string' },
        for: { type: 'string' },
        rule: { type: 'string' },
        'user-hash': { type: 'string' },
        reset: { type: 'boolean' },
        known: { type: 'boolean' },
      },
    });
  } catch (err) {
    out(`${(err as Error).message}\n${ADMIN_USAGE}\n`);
    return 2;
  }
  const { values: v, positionals: [cmd, arg] } = parsed;
  let url = v.url;
  let token = v.token ?? process.env.MAILGATE_ADMIN_TOKEN;
  if (v.config) {
    const cfg = loadConfig(v.config);
    if (!cfg.admin) {
      out(`${v.config}: no admin section\n`);
      return 2;
    }
    const [host, port] = [cfg.admin.listen.slice(0, cfg.admin.listen.lastIndexOf(':')), cfg.admin.listen.slice(cfg.admin.listen.lastIndexOf(':') + 1)];
    url ??= `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${port}`;
    token ??= cfg.admin.token;
  }
  url ??= 'http://127.0.0.1:9925';
  const q = new URLSearchParams();
  if (v.ip) q.set('ip', v.ip);
  if (v.user) q.set('user', v.user);
  let method = 'GET';
  let path: string;
  switch (cmd) {
    case 'limits':
    case 'reset':
      if (!v.ip && !v.user) {
        out(`${cmd} needs --ip and/or --user\n${ADMIN_USAGE}\n`);
        return 2;
      }
      method = cmd === 'reset' ? 'DELETE' : 'GET';
      path = `/api/v1/limits?${q}`;
      break;
    case 'history':
      if (!v.user) {
        out(`history needs --user\n${ADMIN_USAGE}\n`);
        return 2;
      }
      path = `/api/v1/history?${new URLSearchParams({ user: v.user })}`;
      break;
    case 'sending':
      if (!v.user || (v.known && !v.reset)) {
        out(`sending needs --user (and --known only with --reset)\n${ADMIN_USAGE}\n`);
        return 2;
      }
      method = v.reset ? 'DELETE' : 'GET';
      path = `/api/v1/sending?${new URLSearchParams({ user: v.user, ...(v.known ? { known: '1' } : {}) })}`;
      break;
    case 'blocks':
    case 'groups':
    case 'sessions':
    case 'nodes':
      path = `/api/v1/${cmd}`;
      break;
    case 'kick':
      if (!v.ip === !v.user) {
        out(`kick needs --user or --ip\n${ADMIN_USAGE}\n`);
        return 2;
      }
      method = 'POST';
      path = `/api/v1/sessions/kick?${q}`;
      break;
    case 'unblock':
      if (!arg === !v['user-hash']) {
        out(`unblock needs an IP or user, or --user-hash\n${ADMIN_USAGE}\n`);
        return 2;
      }
      method = 'DELETE';
      path = arg ? `/api/v1/blocks/${encodeURIComponent(arg)}` : `/api/v1/blocks?${new URLSearchParams({ userHash: v['user-hash']! })}`;
      break;
    case 'block': {
      if (!arg || !v.for) {
        out(`block needs an IP or user and --for DURATION\n${ADMIN_USAGE}\n`);
        return 2;
      }
      const b = new URLSearchParams({ [isIP(arg) ? 'ip' : 'user']: arg, for: v.for, ...(v.rule ? { rule: v.rule } : {}) });
      method = 'POST';
      path = `/api/v1/blocks?${b}`;
      break;
    }
    case 'attack-mode': {
      if (arg === undefined) {
        path = '/api/v1/attack-mode';
        break;
      }
      const mode = ATTACK_MODES.find((m) => m === arg);
      if (!mode) {
        out(`attack-mode takes on, off or auto\n${ADMIN_USAGE}\n`);
        return 2;
      }
      method = 'POST';
      path = `/api/v1/attack-mode?mode=${mode}`;
      break;
    }
    default:
      out(`${ADMIN_USAGE}\n`);
      return 2;
  }
  const res = await fetch(new URL(path, url), { method, headers: token ? { authorization: `Bearer ${token}` } : {} }).catch((err: Error) => err);
  if (res instanceof Error) {
    out(`cannot reach the admin endpoint at ${url}: ${res.message}\n`);
    return 1;
  }
  out(await res.text());
  return res.ok ? 0 : 1;
}
