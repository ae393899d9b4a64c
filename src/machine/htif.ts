/**
 * The 64-bit HTIF `tohost` / `fromhost` word and the cmio constants (cartesi-gio.md §1.1–§1.3, §2.2).
 * Words are BigInt: a GIO yield word such as 0x0201002500000024 is above 2^53.
 */

/** cartesi-gio.md §1.1: physical address of the rx buffer (host → guest). */
export const CMIO_RX_BUFFER_START = 0x6000_0000n;
/** cartesi-gio.md §1.1: physical address of the tx buffer (guest → host); a GIO id sits at offset 0. */
export const CMIO_TX_BUFFER_START = 0x6080_0000n;

/** cartesi-gio.md §1.2: device 2 = yield. */
export const HTIF_DEV_YIELD = 2;
/** cartesi-gio.md §1.2: yield commands. */
export const HTIF_YIELD_CMD_AUTOMATIC = 0;
export const HTIF_YIELD_CMD_MANUAL = 1;

/** cartesi-gio.md §1.3: manual-yield reasons that are not GIO requests. */
export const HTIF_YIELD_MANUAL_REASON_RX_ACCEPTED = 1;
export const HTIF_YIELD_MANUAL_REASON_RX_REJECTED = 2;
export const HTIF_YIELD_MANUAL_REASON_TX_EXCEPTION = 4;

/** The fields of an HTIF word: dev 63..56, cmd 55..48, reason 47..32, data 31..0 (cartesi-gio.md §1.2). */
export interface HtifWord {
  dev: number;
  cmd: number;
  reason: number;
  data: number;
}

/** cartesi-gio.md §2.2: `dev<<56 | cmd<<48 | reason<<32 | data`. */
export function packHtifWord(word: HtifWord): bigint {
  return (
    (BigInt(word.dev & 0xff) << 56n) |
    (BigInt(word.cmd & 0xff) << 48n) |
    (BigInt(word.reason & 0xffff) << 32n) |
    BigInt(word.data >>> 0)
  );
}

export function unpackHtifWord(word: bigint): HtifWord {
  return {
    dev: Number((word >> 56n) & 0xffn),
    cmd: Number((word >> 48n) & 0xffn),
    reason: Number((word >> 32n) & 0xffffn),
    data: Number(word & 0xffff_ffffn),
  };
}

/** A manual yield whose reason is not 1, 2 or 4 is a GIO request with reason = domain (cartesi-gio.md §1.3). */
export function isGioRequest(cmd: number, reason: number): boolean {
  return (
    cmd === HTIF_YIELD_CMD_MANUAL &&
    reason !== HTIF_YIELD_MANUAL_REASON_RX_ACCEPTED &&
    reason !== HTIF_YIELD_MANUAL_REASON_RX_REJECTED &&
    reason !== HTIF_YIELD_MANUAL_REASON_TX_EXCEPTION
  );
}

/** What `send_cmio_response(code, bytes)` leaves in `fromhost`: `code<<32 | length`, dev = cmd = 0 (§1.5). */
export function fromhostResponseWord(code: number, length: number): bigint {
  return packHtifWord({ dev: 0, cmd: 0, reason: code, data: length });
}
