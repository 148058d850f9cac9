import { SftpError, STATUS } from './status';

/** Reads the SSH wire types (RFC 4251 §5) of an extended request's data; anything short or malformed is BAD_MESSAGE. */
export function wireReader(data: Buffer | undefined) {
  const buf = data ?? Buffer.alloc(0);
  let pos = 0;
  const bad = () => new SftpError(STATUS.BAD_MESSAGE, 'Malformed extended request');
  const bytes = (): Buffer => {
    if (pos + 4 > buf.length) throw bad();
    const len = buf.readUInt32BE(pos);
    if (pos + 4 + len > buf.length) throw bad();
    const out = buf.subarray(pos + 4, pos + 4 + len);
    pos += 4 + len;
    return out;
  };
  return {
    bytes,
    string: (): string => bytes().toString('utf8'),
  };
}

/** uint64 values, big-endian, as one buffer. */
export function uint64s(values: number[]): Buffer {
  const out = Buffer.alloc(8 * values.length);
  values.forEach((v, i) => out.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(v))), 8 * i));
  return out;
}
