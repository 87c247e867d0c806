// Txn validation at the API boundary, as etcd 3.4's v3rpc checkTxnRequest + checkIntervals do.
import { Errors } from '@nestcd/errors';
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from './types';

const isEmpty = (b: Buffer | undefined): boolean => b === undefined || b.length === 0;

/** etcd's checkPutRequest. */
export function checkPut(r: PutRequest): void {
  if (isEmpty(r.key)) throw Errors.emptyKey();
  if (r.ignoreValue && !isEmpty(r.value)) throw Errors.valueProvided();
  if (r.ignoreLease && r.lease !== undefined && r.lease !== 0n) throw Errors.leaseProvided();
}

/** etcd's checkRangeRequest / checkDeleteRequest. */
export function checkKeyed(r: RangeRequest | DeleteRangeRequest): void {
  if (isEmpty(r.key)) throw Errors.emptyKey();
}

function checkRequestOp(op: RequestOp, maxTxnOps: number): void {
  if (op == null) throw Errors.keyNotFound();
  if ('requestRange' in op && op.requestRange) return checkKeyed(op.requestRange);
  if ('requestPut' in op && op.requestPut) return checkPut(op.requestPut);
  if ('requestDeleteRange' in op && op.requestDeleteRange) return checkKeyed(op.requestDeleteRange);
  if ('requestTxn' in op && op.requestTxn) return checkTxnRequest(op.requestTxn, maxTxnOps);
  // empty op / nil entry: etcd answers ErrGRPCKeyNotFound
  throw Errors.keyNotFound();
}

function checkTxnRequest(r: TxnRequest, maxTxnOps: number): void {
  const compare = r.compare ?? [];
  const success = r.success ?? [];
  const failure = r.failure ?? [];
  const opc = Math.max(compare.length, success.length, failure.length);
  if (opc > maxTxnOps) throw Errors.tooManyOps();
  for (const c of compare) if (isEmpty(c.key)) throw Errors.emptyKey();
  for (const u of success) checkRequestOp(u, maxTxnOps - opc);
  for (const u of failure) checkRequestOp(u, maxTxnOps - opc);
}

// ---- checkIntervals: no put may hit a key put or deleted elsewhere in the same branch ----

/** A delete interval in latin1 string space; end === undefined: single key. Compared like etcd's
 * StringAffineComparable: the empty string is +infinity, every other string compares bytewise. */
interface Ival { begin: string; end: string }

const affineLess = (a: string, b: string): boolean => {
  // a < b with "" = +inf
  if (a.length === 0) return false;
  if (b.length === 0) return true;
  return a < b;
};

function intersectsPoint(dels: Ival[], k: string): boolean {
  // point k = [k, k+"\0"); interval [b, e) intersects iff b < k+"\0" && k < e
  const kEnd = k + '\x00';
  for (const d of dels) {
    if (affineLess(d.begin, kEnd) && affineLess(k, d.end)) return true;
  }
  return false;
}

function checkIntervals(reqs: RequestOp[]): { puts: Set<string>; dels: Ival[] } {
  const dels: Ival[] = [];
  for (const req of reqs) {
    if (!req || !('requestDeleteRange' in req) || !req.requestDeleteRange) continue;
    const d = req.requestDeleteRange;
    const k = d.key.toString('latin1');
    // etcd 3.4 uses range_end literally here (a "\0" range_end is not special-cased).
    if (!isEmpty(d.rangeEnd)) dels.push({ begin: k, end: d.rangeEnd!.toString('latin1') });
    else dels.push({ begin: k, end: k + '\x00' });
  }
  const puts = new Set<string>();
  for (const req of reqs) {
    if (!req || !('requestTxn' in req) || !req.requestTxn) continue;
    const then = checkIntervals(req.requestTxn.success ?? []);
    const els = checkIntervals(req.requestTxn.failure ?? []);
    for (const k of then.puts) {
      if (puts.has(k) || intersectsPoint(dels, k)) throw Errors.duplicateKey();
      puts.add(k);
    }
    for (const k of els.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw Errors.duplicateKey();
      if (intersectsPoint(dels, k)) throw Errors.duplicateKey();
      puts.add(k);
    }
    dels.push(...then.dels, ...els.dels);
  }
  for (const req of reqs) {
    if (!req || !('requestPut' in req) || !req.requestPut) continue;
    const k = req.requestPut.key.toString('latin1');
    if (puts.has(k) || intersectsPoint(dels, k)) throw Errors.duplicateKey();
    puts.add(k);
  }
  return { puts, dels };
}

/**
 * etcd's API-boundary txn check: tooManyOps when compare/success/failure exceed maxTxnOps (nested txns get
 * the remaining budget), emptyKey / valueProvided / leaseProvided per op, then duplicateKey for a put hitting
 * another put or a delete range of the same branch (nested txns included, each branch separately).
 */
export function validateTxn(req: TxnRequest, maxTxnOps: number): void {
  checkTxnRequest(req, maxTxnOps);
  checkIntervals(req.success ?? []);
  checkIntervals(req.failure ?? []);
}
