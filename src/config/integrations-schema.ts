// crowdsec, firewall, alerts: how mailgate plugs into the operator's security stack
// (integrations/). Pure.
import { z } from 'zod';
import { duration } from './fields.js';

const httpUrl = z.string().regex(/^https?:\/\/[^\s]+$/, 'expected an http:// or https:// URL');

export const crowdsec = z
  .strictObject({
    url: httpUrl.describe('The CrowdSec Local API, e.g. http://127.0.0.1:8080/.'),
    bouncerKey: z.string().min(8).optional().describe('A bouncer API key (cscli bouncers add mailgate): mailgate pulls decisions and refuses those clients at connect. Or MAILGATE_CROWDSEC_BOUNCER_KEY.'),
    interval: duration('How often the decision stream is asked for changes.').prefault('10s'),
    scopes: z.array(z.enum(['ip', 'range'])).min(1).default(['ip', 'range']).describe('Decision scopes to enforce.'),
    origins: z.array(z.string().min(1)).min(1).optional().describe('Only decisions of these origins (crowdsec, cscli, CAPI, lists…); default all.'),
    onError: z
      .enum(['keep', 'open'])
      .default('keep')
      .describe('While the LAPI cannot be reached: keep the last decisions (each until its own expiry) | open (forget them: nobody is refused for CrowdSec).'),
    machine: z
      .strictObject({
        login: z.string().min(1).describe('A machine registered with the LAPI (cscli machines add mailgate --password …).'),
        password: z.string().min(1).optional().describe('Its password; or MAILGATE_CROWDSEC_MACHINE_PASSWORD.'),
      })
      .optional()
      .describe("Push mailgate's address blocks to the LAPI as alerts with decisions, so CrowdSec's other bouncers (the firewall one) enforce them."),
  })
  .superRefine((c, ctx) => {
    if (!c.bouncerKey && !c.machine) ctx.addIssue({ code: 'custom', message: 'expected bouncerKey (pull decisions), machine (push blocks), or both' });
  })
  .describe('CrowdSec: enforce its decisions at connect (bouncer), and/or report blocks to it (machine).');

const setName = z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,30}$/, 'expected an nftables name: a letter, then letters, digits or _');

export const firewall = z
  .strictObject({
    nftables: z
      .strictObject({
        family: z.enum(['inet', 'ip', 'ip6']).default('inet').describe('The table family.'),
        table: setName.default('mailgate').describe('Table holding the sets (created if missing, with the sets).'),
        set4: setName.default('blocked4').describe('Set of IPv4 addresses and networks (type ipv4_addr; flags interval, timeout).'),
        set6: setName.default('blocked6').describe('Set of IPv6 addresses and networks.'),
        nft: z.string().min(1).default('nft').describe('The nft command (a wrapper such as "sudo -n /usr/sbin/nft" runs it with the rights it needs).'),
      })
      .describe('Mirror address blocks into nftables sets (per-element timeouts), for a rule of yours that drops them.'),
    interval: duration('How often blocks are read and mirrored (they are also mirrored at start).').prefault('5s'),
  })
  .describe("Push mailgate's address blocks down to the firewall.");

const alertEvent = z.enum(['protection', 'attack-mode', 'block', 'store', 'backend', 'new-network', 'retired-password', 'sending-limit']);

export const alerts = z
  .strictObject({
    webhooks: z
      .array(
        z.strictObject({
          url: httpUrl.describe('Where a JSON body is POSTed.'),
          events: z.array(alertEvent).min(1).default(['protection', 'attack-mode', 'block', 'store', 'backend', 'new-network', 'retired-password', 'sending-limit']).describe('protection (an account under protection), attack-mode (on/off), block (an address blocked by a rule), store, backend (down/up); new-network, retired-password (raised only when notify turns them on); sending-limit (an account reached one of limits.sending, once per limit and window).'),
          cooldown: duration('Events of one kind within this are sent as one message (with how many more).').prefault('5m'),
          headers: z.record(z.string(), z.string()).default({}).describe('Extra request headers (an Authorization, a Slack-style token). Accounts appear as their keyed hash only (GET /api/v1/limits?user= finds one).'),
        }),
      )
      .min(1),
  })
  .describe('Webhooks on events operators act on, aggregated per kind, retried, never delaying a login.');

export type CrowdsecConfig = z.output<typeof crowdsec>;
export type FirewallConfig = z.output<typeof firewall>;
export type AlertsConfig = z.output<typeof alerts>;
export type AlertEvent = z.output<typeof alertEvent>;
