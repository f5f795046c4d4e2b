/**
 * IP addresses and CIDR ranges without regexes or platform APIs (Node and workerd alike).
 * IPv4 is a uint32 number; IPv6 is a 128-bit bigint. An IPv4-mapped IPv6 address
 * (`::ffff:1.2.3.4`) is treated as the IPv4 address it carries, so one range list covers a
 * dual-stack listener that reports v4 clients in mapped form (RFC 4291 section 2.5.5.2).
 */

/** A parsed address: family 4 uses `v4`, family 6 uses `v6`. */
export interface IpAddress {
  readonly family: 4 | 6;
  readonly v4: number;
  readonly v6: bigint;
}

/** A parsed range; an address matches when its first `prefix` bits equal the network's. */
export interface CidrRange {
  readonly family: 4 | 6;
  readonly prefix: number;
  readonly v4Mask: number;
  readonly v4Network: number;
  readonly v6Mask: bigint;
  readonly v6Network: bigint;
}

const ALL_ONES_128 = (1n << 128n) - 1n;

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  if (code >= 65 && code <= 70) return code - 55;
  return -1;
}

/** Dotted-quad IPv4; leading zeros are refused because some parsers read them as octal. */
export function parseIPv4(text: string): number | undefined {
  let value = 0;
  let octets = 0;
  let octet = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const code = i === text.length ? 46 : text.charCodeAt(i);
    if (code === 46) {
      if (digits === 0 || octets === 4) return undefined;
      value = value * 256 + octet;
      octets++;
      octet = 0;
      digits = 0;
    } else if (isDigit(code)) {
      if (digits > 0 && octet === 0) return undefined;
      octet = octet * 10 + (code - 48);
      digits++;
      if (octet > 255) return undefined;
    } else {
      return undefined;
    }
  }
  return octets === 4 ? value : undefined;
}

function parseGroups(text: string, groups: number[], allowV4Tail: boolean): boolean {
  if (text === '') return true;
  const parts = text.split(':');
  for (let p = 0; p < parts.length; p++) {
    const part = parts[p] as string;
    if (allowV4Tail && p === parts.length - 1 && part.includes('.')) {
      const v4 = parseIPv4(part);
      if (v4 === undefined) return false;
      groups.push(v4 >>> 16, v4 & 0xffff);
      continue;
    }
    if (part.length === 0 || part.length > 4) return false;
    let group = 0;
    for (let i = 0; i < part.length; i++) {
      const h = hexValue(part.charCodeAt(i));
      if (h < 0) return false;
      group = group * 16 + h;
    }
    groups.push(group);
  }
  return true;
}

/** IPv6 text form (RFC 4291 section 2.2), including `::` and a trailing dotted quad; no zone IDs. */
export function parseIPv6(text: string): bigint | undefined {
  const gap = text.indexOf('::');
  if (gap !== -1 && text.indexOf('::', gap + 1) !== -1) return undefined;
  const head: number[] = [];
  const tail: number[] = [];
  if (gap === -1) {
    if (!parseGroups(text, head, true) || head.length !== 8) return undefined;
  } else {
    const before = text.slice(0, gap);
    const after = text.slice(gap + 2);
    if (!parseGroups(before, head, false) || !parseGroups(after, tail, true)) {
      return undefined;
    }
    // `::` stands for one or more zero groups.
    if (head.length + tail.length > 7) return undefined;
  }
  let value = 0n;
  for (const group of head) value = (value << 16n) | BigInt(group);
  for (let i = head.length + tail.length; i < 8; i++) value <<= 16n;
  for (const group of tail) value = (value << 16n) | BigInt(group);
  return value;
}

function isMappedV4(value: bigint): boolean {
  return value >> 32n === 0xffffn;
}

/** Parses a client address as the platform reports it; mapped v4 becomes family 4. */
export function parseIp(text: string): IpAddress | undefined {
  if (!text.includes(':')) {
    const v4 = parseIPv4(text);
    return v4 === undefined ? undefined : { family: 4, v4, v6: 0n };
  }
  const v6 = parseIPv6(text);
  if (v6 === undefined) return undefined;
  if (isMappedV4(v6)) return { family: 4, v4: Number(v6 & 0xffffffffn), v6: 0n };
  return { family: 6, v4: 0, v6 };
}

function v4Mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

function v6Mask(prefix: number): bigint {
  return prefix === 0 ? 0n : (ALL_ONES_128 << BigInt(128 - prefix)) & ALL_ONES_128;
}

function parsePrefix(text: string, max: number): number | undefined {
  if (text.length === 0 || text.length > 3) return undefined;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (!isDigit(code)) return undefined;
    value = value * 10 + (code - 48);
  }
  if (text.length > 1 && text.charCodeAt(0) === 48) return undefined;
  return value <= max ? value : undefined;
}

function v4Range(network: number, prefix: number): CidrRange | string {
  const mask = v4Mask(prefix);
  // Host bits set usually means a typo (`10.0.0.1/8` meant `/32`?) that would widen access.
  if ((network & mask) >>> 0 !== network) return 'host bits set after the prefix';
  return { family: 4, prefix, v4Mask: mask, v4Network: network, v6Mask: 0n, v6Network: 0n };
}

/**
 * Parses `address/prefix` or a bare address (a host route). Returns the range, or a short reason
 * for the error message. A v6 range inside `::ffff:0:0/96` becomes the v4 range it denotes.
 */
export function parseCidr(text: string): CidrRange | string {
  const slash = text.indexOf('/');
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const prefixText = slash === -1 ? undefined : text.slice(slash + 1);
  if (!addressText.includes(':')) {
    const v4 = parseIPv4(addressText);
    if (v4 === undefined) return 'not an IPv4 or IPv6 address';
    const prefix = prefixText === undefined ? 32 : parsePrefix(prefixText, 32);
    if (prefix === undefined) return 'IPv4 prefix length must be 0..32';
    return v4Range(v4, prefix);
  }
  const v6 = parseIPv6(addressText);
  if (v6 === undefined) return 'not an IPv4 or IPv6 address';
  const prefix = prefixText === undefined ? 128 : parsePrefix(prefixText, 128);
  if (prefix === undefined) return 'IPv6 prefix length must be 0..128';
  if (prefix >= 96 && isMappedV4(v6)) return v4Range(Number(v6 & 0xffffffffn), prefix - 96);
  const mask = v6Mask(prefix);
  if ((v6 & mask) !== v6) return 'host bits set after the prefix';
  return { family: 6, prefix, v4Mask: 0, v4Network: 0, v6Mask: mask, v6Network: v6 };
}

/** Whether `address` lies in `range`; families never cross (except mapped v4, folded at parse). */
export function cidrContains(range: CidrRange, address: IpAddress): boolean {
  if (range.family !== address.family) return false;
  if (range.family === 4) return (address.v4 & range.v4Mask) >>> 0 === range.v4Network;
  return (address.v6 & range.v6Mask) === range.v6Network;
}
