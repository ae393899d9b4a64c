import { isIP } from 'node:net';
import { BadRequestError } from '../errors.ts';

const MAX_DNS_NAME_LENGTH = 253;
const DNS_LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

/** A host name as it goes into a certificate: a lower-case DNS name, or an IP address in canonical text. */
export interface CertHost {
  readonly type: 'dns' | 'ip';
  readonly value: string;
}

/**
 * Normalises a host for a certificate and for the leaf cache: brackets and IPv6 zone ids dropped, IPv6
 * fully expanded (so `::1` and `[0:0::1]` share a leaf), DNS names lower-cased (RFC 4343) without the
 * trailing root dot. Anything else is rejected: the value comes from the client's ClientHello.
 * @throws BadRequestError
 */
export function parseCertHost(hostname: string): CertHost {
  let text = hostname.trim();
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  const zoneless = text.split('%')[0] ?? '';
  if (isIP(zoneless) === 4) return { type: 'ip', value: zoneless };
  if (isIP(zoneless) === 6) return { type: 'ip', value: expandIpv6(zoneless) };
  const name = text.toLowerCase().replace(/\.$/, '');
  if (name.length === 0 || name.length > MAX_DNS_NAME_LENGTH || !name.split('.').every((label) => DNS_LABEL.test(label))) {
    throw new BadRequestError(`Invalid TLS host name: ${JSON.stringify(hostname)} (expected a DNS name or an IP address)`);
  }
  return { type: 'dns', value: name };
}

/** Eight colon-separated hex groups; an embedded dotted IPv4 tail (`::ffff:1.2.3.4`) becomes two groups. */
function expandIpv6(address: string): string {
  let text = address.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros: string[] = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((group) => parseInt(group, 16).toString(16)).join(':');
}
