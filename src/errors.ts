// Errors with stable codes. Thrown only inside the process (config, start-up, backend I/O);
// bad client input never becomes an exception: it becomes a protocol reply.

export type ErrorCode =
  | 'MG_CONFIG_INVALID'
  | 'MG_CONFIG_READ'
  | 'MG_TLS_MATERIAL'
  | 'MG_BACKEND_CONNECT'
  | 'MG_BACKEND_TIMEOUT'
  | 'MG_BACKEND_PROTOCOL'
  | 'MG_BACKEND_TLS'
  /** Worker mode: the primary (or a worker) did not answer in time, or is gone. */
  | 'MG_IPC_TIMEOUT'
  | 'MG_IPC_CLOSED'
  | 'MG_IPC_BUSY';

export class MailgateError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'MailgateError';
  }
}

/** The exit code of a start that failed: 2 for what the config must fix (the file, TLS
 *  material), 1 for anything else. */
export function exitCodeOf(err: unknown): 1 | 2 {
  return err instanceof MailgateError && (err.code === 'MG_TLS_MATERIAL' || err.code.startsWith('MG_CONFIG')) ? 2 : 1;
}
