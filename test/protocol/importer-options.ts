import type { ImporterOptions } from 'ipfs-unixfs-importer';
import { fixedSize } from 'ipfs-unixfs-importer/chunker';
import { balanced } from 'ipfs-unixfs-importer/layout';
import { CHUNK_BYTES, LEAF_WRITES_IN_FLIGHT, MAX_LINKS_PER_NODE } from '../../src/protocol/unixfs.ts';

/**
 * ipfs-unixfs-importer set to the IPIP-499 `unixfs-v1-2025` profile with no option left to a library
 * default: the reference importBody is compared with (test/protocol/unixfs.test.ts) and measured against
 * (bench/unixfs-import.ts). The hash is not an option: the importer hashes every block with sha2-256 (its
 * `persist`), the profile's hash.
 */
export function importerOptions(shape: { chunkBytes: number; maxLinks: number } = { chunkBytes: CHUNK_BYTES, maxLinks: MAX_LINKS_PER_NODE }): ImporterOptions {
  return {
    profile: 'unixfs-v1-2025', // IPIP-499; the options below spell out what it implies
    cidVersion: 1, // CIDv1 for every block
    rawLeaves: true, // leaves are raw blocks (codec 0x55), not dag-pb nodes
    leafType: 'file', // the UnixFS type of a wrapped leaf: unused with rawLeaves, set all the same
    reduceSingleLeafToSelf: true, // a body of one chunk is that raw leaf, no dag-pb root (as Kubo)
    chunker: fixedSize({ chunkSize: shape.chunkBytes }), // fixed chunks (1 MiB in the profile)
    layout: balanced({ maxChildrenPerNode: shape.maxLinks }), // balanced DAG (at most 1024 links per node)
    fieldOrder: 'links-first', // dag-pb's canonical field order (Links, then Data), as Kubo writes it
    blockWriteConcurrency: LEAF_WRITES_IN_FLIGHT, // leaves hashed and written in batches of this many
    fileImportConcurrency: 1, // one file per import
    wrapWithDirectory: false, // the root is the file itself
    // Directory sharding (HAMT): no directory is built here; the profile's values all the same.
    shardSplitThresholdBytes: 262_144,
    shardSplitStrategy: 'block-bytes',
    shardFanoutBits: 8,
  };
}
