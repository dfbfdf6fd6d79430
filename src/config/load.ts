// Reads and validates the config file. Errors name the key path and what was expected;
// the caller exits 2 on any of them, before anything listens.
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { MailgateError } from '../errors.js';
import { configSchema, type Config } from './schema.js';

export function formatIssues(issues: z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const path = issue.path.map(String);
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((k) => `${[...path, k].join('.')}: unknown key`).join('\n');
      }
      return `${path.join('.') || '(top level)'}: ${issue.message}`;
    })
    .join('\n');
}

/** Secrets that may come from the environment instead of the file: MAILGATE_KEY_SECRET
 *  (limits.keySecret), MAILGATE_ADMIN_TOKEN (admin.token, when an admin section exists) and
 *  MAILGATE_POLICY_API_KEY (policyServer.apiKey, when a policyServer section exists),
 *  MAILGATE_CROWDSEC_BOUNCER_KEY and MAILGATE_CROWDSEC_MACHINE_PASSWORD (crowdsec). */
function withEnvSecrets(doc: unknown, env: NodeJS.ProcessEnv): unknown {
  if (!doc || typeof doc !== 'object') return doc;
  let d = doc as { limits?: Record<string, unknown>; admin?: Record<string, unknown> };
  const obj = (v: unknown) => (v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined);
  if (env.MAILGATE_KEY_SECRET && obj(d.limits ?? {}) && obj(d.limits ?? {})!.keySecret === undefined) {
    d = { ...d, limits: { ...(d.limits ?? {}), keySecret: env.MAILGATE_KEY_SECRET } };
  }
  const admin = obj(d.admin);
  if (env.MAILGATE_ADMIN_TOKEN && admin && admin.token === undefined && admin.tokenFile === undefined) {
    d = { ...d, admin: { ...admin, token: env.MAILGATE_ADMIN_TOKEN } };
  }
  const ps = obj((d as { policyServer?: unknown }).policyServer);
  if (env.MAILGATE_POLICY_API_KEY && ps && ps.apiKey === undefined) {
    d = { ...d, policyServer: { ...ps, apiKey: env.MAILGATE_POLICY_API_KEY } } as typeof d;
  }
  const cs = obj((d as { crowdsec?: unknown }).crowdsec);
  if (cs && env.MAILGATE_CROWDSEC_BOUNCER_KEY && cs.bouncerKey === undefined) d = { ...d, crowdsec: { ...cs, bouncerKey: env.MAILGATE_CROWDSEC_BOUNCER_KEY } } as typeof d;
  const machine = obj(obj((d as { crowdsec?: unknown }).crowdsec)?.machine);
  if (machine && env.MAILGATE_CROWDSEC_MACHINE_PASSWORD && machine.password === undefined) {
    d = { ...d, crowdsec: { ...obj((d as { crowdsec?: unknown }).crowdsec), machine: { ...machine, password: env.MAILGATE_CROWDSEC_MACHINE_PASSWORD } } } as typeof d;
  }
  return d;
}

/** Validates an already-parsed document. */
export function parseConfig(doc: unknown, env: NodeJS.ProcessEnv = process.env): Config {
  const result = configSchema.safeParse(withEnvSecrets(doc, env));
  if (!result.success) throw new MailgateError('MG_CONFIG_INVALID', formatIssues(result.error.issues));
  return Object.freeze(result.data) as Config;
}

export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new MailgateError('MG_CONFIG_READ', `cannot read ${file}: ${(err as Error).message}`);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new MailgateError('MG_CONFIG_INVALID', doc.errors.map((e) => `${file}: ${e.message}`).join('\n'));
  }
  return parseConfig(doc.toJS());
}
