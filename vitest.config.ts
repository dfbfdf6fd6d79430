// Test projects by kind (ARCHITECTURE.md): `unit` is pure and needs no service, so
// `npm run test:unit` is the fast loop; the others start their own Dovecot and Redis on free
// loopback ports. `vitest run` (npm test) runs them all.
import { defineConfig } from 'vitest/config';

/** One project per test folder; `extends: true` gives each the shared options below. */
const project = (name: string, include: string[]) => ({ extends: true as const, test: { name, include } });

export default defineConfig({
  test: {
    // A login against a real Dovecot, a TLS handshake or a Redis failover can take seconds
    // on a loaded CI machine; starting Dovecot or a Redis cluster in a hook longer still.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // A process per test file, not a worker thread: the hostile tests count this process's
    // open file descriptors (/proc/self/fd) and memory, which threads would share.
    pool: 'forks',
    projects: [
      project('unit', ['test/unit/**/*.test.ts']),
      project('integration', ['test/integration/**/*.test.ts']),
      project('hostile', ['test/hostile/**/*.test.ts']),
      project('e2e', ['test/e2e/**/*.test.ts']),
    ],
  },
});
