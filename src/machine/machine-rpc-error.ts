import { OracleError } from '../errors.ts';

/** A failure of the emulator or of its JSON-RPC server. errors.ts has no machine code yet: ORACLE_ERR_STORE. */
export class MachineRpcError extends OracleError {
  readonly method: string;
  /** The JSON-RPC error code, when the server answered with one. */
  readonly rpcCode: number | undefined;

  constructor(method: string, message: string, options?: { cause?: unknown; rpcCode?: number }) {
    super('ORACLE_ERR_STORE', message, options);
    this.name = 'MachineRpcError';
    this.method = method;
    this.rpcCode = options?.rpcCode;
  }
}
