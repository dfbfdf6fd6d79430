// Errors with stable codes. Thrown only inside the process (config, start-up, backend I/O);
// bad client input never becomes an exception: it becomes a protocol reply.

export type ErrorCode =
  | 'MG_CONFIG_INVALID'
  | 'MG_CONFIG_READ'
  | 'MG_TLS_MATERIAL'
  | 'MG_BACKEND_CONNECT'
  | 'MG_BACKEND_TIMEOUT'
  | 'MG_BACKEND_PROTOCOL'
  | 'MG_BACKEND_TLS';

export class MailgateError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'MailgateError';
  }
}
