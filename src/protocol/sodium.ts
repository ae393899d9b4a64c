import { createRequire } from 'node:module';

/** What is used of sodium-native (libsodium's prebuilt addon; its own types are not published with it). */
export interface Sodium {
  crypto_sign_detached(signature: Uint8Array, message: Uint8Array, secretKey: Buffer): void;
  crypto_sign_verify_detached(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
  sodium_malloc(size: number): Buffer;
  sodium_mprotect_readonly(buffer: Buffer): void;
}

/** undefined until the first attempt. */
let loaded: Sodium | null | undefined;

/**
 * sodium-native, loaded once; null on a platform it has no build for (the Cartesi guest's riscv64) or when it
 * is not installed: Node's OpenSSL does the work there, with the same results (`signature.ts`,
 * `src/signing/signing-key.ts`). Loaded through `require` at run time so that a missing addon is a fallback,
 * not a failed import. Pure computation: no file or socket is touched once it is loaded.
 */
export function loadSodium(): Sodium | null {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('sodium-native') as Sodium;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}
