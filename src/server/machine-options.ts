// The options a listener's protocol machines are made with: one object shared by the
// listener's sessions while the config and the backend's probed capabilities stay the same
// (an object per connection cost 72 bytes, issue 22). Machines only read it.
import type { ListenerConfig } from '../config/schema.js';
import type { MachineOptions } from '../protocols/protocol.js';
import type { SessionEnv } from './env.js';

const made = new WeakMap<ListenerConfig, { env: SessionEnv; capabilities: readonly string[]; options: MachineOptions }>();

export function machineOptions(listener: ListenerConfig, env: SessionEnv): MachineOptions {
  const capabilities = env.capabilities(listener.backend);
  const last = made.get(listener);
  if (last && last.env === env && last.capabilities === capabilities) return last.options;
  const options: MachineOptions = Object.freeze({
    tlsMode: listener.tls,
    requireTls: listener.requireTls,
    maxBadCommands: env.maxBadCommands,
    maxAuthAttempts: env.maxAuthAttempts,
    hostname: listener.hostname,
    backendCapabilities: capabilities,
  });
  made.set(listener, { env, capabilities, options });
  return options;
}
