/** etcd's authpb.Permission.Type numbers. */
export enum PermType {
  READ = 0,
  WRITE = 1,
  READWRITE = 2,
}

export interface Permission {
  permType: PermType;
  key: Buffer;
  /** Empty: the single key; `\0`: every key from `key` on; else [key, rangeEnd). */
  rangeEnd: Buffer;
}

/** A half-open byte interval; `end` undefined reaches past every key. */
interface Interval {
  start: Buffer;
  end?: Buffer;
}

const isOpenEnd = (b: Buffer): boolean => b.length === 1 && b[0] === 0;

function toInterval(p: Permission): Interval {
  if (p.rangeEnd.length === 0) return { start: p.key, end: Buffer.concat([p.key, Buffer.from([0])]) };
  return { start: p.key, end: isOpenEnd(p.rangeEnd) ? undefined : p.rangeEnd };
}

/** end a < end b, with undefined as +infinity. */
const endBefore = (a: Buffer | undefined, b: Buffer | undefined): boolean => a !== undefined && (b === undefined || Buffer.compare(a, b) < 0);

/**
 * Whether the user's permissions of `wanted` type allow touching [key, rangeEnd) (etcd's isRangeOpPermitted):
 * a single key must fall in some permitted interval; a range must be covered by the union of them.
 */
export function isPermitted(perms: Permission[], key: Buffer, rangeEnd: Buffer, wanted: PermType.READ | PermType.WRITE): boolean {
  const intervals = perms.filter((p) => p.permType === wanted || p.permType === PermType.READWRITE).map(toInterval);
  if (rangeEnd.length === 0) {
    return intervals.some((i) => Buffer.compare(i.start, key) <= 0 && endBefore(key, i.end));
  }
  const want: Interval = { start: key, end: isOpenEnd(rangeEnd) ? undefined : rangeEnd };
  // Walk the intervals by start, extending how far from `key` on is covered without a gap.
  intervals.sort((a, b) => Buffer.compare(a.start, b.start));
  let covered: Buffer | undefined = want.start;
  for (const i of intervals) {
    if (covered === undefined) break;
    if (Buffer.compare(i.start, covered) > 0) break;
    if (endBefore(covered, i.end) || i.end === undefined) covered = i.end;
  }
  if (covered === undefined) return true;
  return want.end !== undefined && Buffer.compare(covered, want.end) >= 0;
}
