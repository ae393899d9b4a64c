import { MachineError } from '../errors.ts';

/** A failure of the emulator or of its JSON-RPC server (ORACLE_ERR_MACHINE), naming the JSON-RPC method. */
export class MachineRpcError extends MachineError {
  readonly method: string;
  /** The JSON-RPC error code, when the server answered with one. */
  readonly rpcCode: number | undefined;

  constructor(method: string, message: string, options?: { cause?: unknown; rpcCode?: number }) {
    super(message, options);
    this.name = 'MachineRpcError';
    this.method = method;
    this.rpcCode = options?.rpcCode;
  }
}
