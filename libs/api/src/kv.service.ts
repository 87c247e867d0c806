import { Errors } from '@nestcd/errors';
import type { EtcdServer } from '@nestcd/server';
import {
  deleteRangeRequestIn, deleteRangeResponseOut, headerOut, putRequestIn, putRequestSize, putResponseOut, rangeRequestIn,
  rangeResponseOut, requestSize, toNumber, txnRequestIn, txnResponseOut,
} from './codec';
import { unary } from './errors';
import type { PbCompactionRequest, PbDeleteRangeRequest, PbPutRequest, PbRangeRequest, PbTxnRequest } from './wire';

export function kvHandlers(server: EtcdServer, log?: (msg: string) => void) {
  const { maxRequestBytes, maxTxnOps } = server.config;
  const checkSize = (req: object) => {
    if (requestSize(req) > maxRequestBytes) throw Errors.requestTooLarge();
  };
  return {
    Range: unary(async (pb: PbRangeRequest) => {
      const res = await server.range(rangeRequestIn(pb));
      return rangeResponseOut(res, headerOut(server.header(res.revision)));
    }, log),
    Put: unary(async (pb: PbPutRequest) => {
      const req = putRequestIn(pb);
      if (putRequestSize(req) > maxRequestBytes) throw Errors.requestTooLarge();
      const res = await server.put(req);
      return putResponseOut(res, headerOut(server.header(res.revision)));
    }, log),
    DeleteRange: unary(async (pb: PbDeleteRangeRequest) => {
      const req = deleteRangeRequestIn(pb);
      checkSize(req);
      const res = await server.deleteRange(req);
      return deleteRangeResponseOut(res, headerOut(server.header(res.revision)));
    }, log),
    Txn: unary(async (pb: PbTxnRequest) => {
      const req = txnRequestIn(pb, maxTxnOps);
      checkSize(req);
      const res = await server.txn(req);
      return txnResponseOut(res, headerOut(server.header(res.revision)));
    }, log),
    Compact: unary(async (pb: PbCompactionRequest) => {
      const res = await server.compact({ revision: toNumber(pb.revision), physical: pb.physical });
      return { header: headerOut(server.header(res.revision)) };
    }, log),
  };
}
