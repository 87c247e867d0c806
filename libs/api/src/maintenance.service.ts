import * as grpc from '@grpc/grpc-js';
import { Errors } from '@nestcd/errors';
import { AlarmAction, AlarmType } from '@nestcd/server';
import type { EtcdServer, Member } from '@nestcd/server';
import { createHash } from 'node:crypto';
import { headerOut, toBigInt, toNumber } from './codec';
import { toServiceError, unary } from './errors';
import type { Int64 } from './wire';

const SNAPSHOT_CHUNK = 32 * 1024;

const memberOut = (m: Member) => ({
  ID: m.id.toString(),
  name: m.name,
  peerURLs: m.peerUrls,
  clientURLs: m.clientUrls,
  isLearner: m.isLearner,
});

export function clusterHandlers(server: EtcdServer, log?: (msg: string) => void) {
  // etcd's cluster service leaves the revision out of its headers.
  const header = () => headerOut(server.header(0));
  return {
    MemberList: unary(async () => ({ header: header(), members: server.memberList().map(memberOut) }), log),
    MemberAdd: unary(async (pb: { peerURLs?: string[]; isLearner?: boolean }) => {
      const { member, members } = await server.memberAdd(pb.peerURLs ?? [], !!pb.isLearner);
      return { header: header(), member: memberOut(member), members: members.map(memberOut) };
    }, log),
    MemberRemove: unary(async (pb: { ID: Int64 }) => {
      const members = await server.memberRemove(toBigInt(pb.ID));
      return { header: header(), members: members.map(memberOut) };
    }, log),
    MemberUpdate: unary(async (pb: { ID: Int64; peerURLs?: string[] }) => {
      const members = await server.memberUpdate(toBigInt(pb.ID), pb.peerURLs ?? []);
      return { header: header(), members: members.map(memberOut) };
    }, log),
    MemberPromote: unary(async (pb: { ID: Int64 }) => {
      const members = await server.memberPromote(toBigInt(pb.ID));
      return { header: header(), members: members.map(memberOut) };
    }, log),
  };
}

export function maintenanceHandlers(server: EtcdServer, log?: (msg: string) => void) {
  return {
    Status: unary(async () => {
      const s = server.status();
      return {
        header: headerOut(server.header()),
        version: s.version,
        dbSize: s.dbSize,
        leader: s.leader.toString(),
        raftIndex: s.raftIndex,
        raftTerm: s.raftTerm,
        raftAppliedIndex: s.raftAppliedIndex,
        errors: s.errors,
        dbSizeInUse: s.dbSizeInUse,
        isLearner: s.isLearner,
      };
    }, log),
    Alarm: unary(async (pb: { action: number; memberID: Int64; alarm: number }) => {
      if (pb.action < AlarmAction.GET || pb.action > AlarmAction.DEACTIVATE) throw Errors.invalidArgument('etcdserver: invalid alarm action');
      let alarms = await server.alarm(pb.action, toBigInt(pb.memberID), pb.alarm);
      if (pb.action === AlarmAction.GET && pb.alarm !== AlarmType.NONE) alarms = alarms.filter((a) => a.alarm === pb.alarm);
      // etcd's alarm and defragment answers carry no header at all.
      return {
        alarms: alarms.map((a) => ({ memberID: a.memberId.toString(), alarm: a.alarm })),
      };
    }, log),
    Defragment: unary(async () => {
      await server.defragment();
      return {};
    }, log),
    Hash: unary(async () => {
      const h = server.hashKV(0);
      return { header: headerOut(server.header()), hash: h.hash };
    }, log),
    HashKV: unary(async (pb: { revision: Int64 }) => {
      const h = server.hashKV(toNumber(pb.revision));
      return { header: headerOut(server.header(h.revision)), hash: h.hash, compactRevision: h.compactRevision };
    }, log),
    MoveLeader: unary(async (pb: { targetID: Int64 }) => {
      await server.moveLeader(toBigInt(pb.targetID));
      return { header: headerOut(server.header()) };
    }, log),
    /** The member's whole state as one blob, then its sha256, as etcd appends a digest to its snapshot stream. */
    Snapshot: async (call: grpc.ServerWritableStream<object, object>) => {
      try {
        // etcdctl checks that the body (a bbolt file for etcd) is a whole number of 512-byte blocks followed
        // by its sha256; the member snapshot format ignores the zero padding. The state is streamed as it lies
        // (no copy) and hashed as it goes, so a big keyspace neither doubles in memory nor stalls the member;
        // the stream waits for the client to drain what it was sent.
        const state = await server.snapshot();
        const raw = Buffer.from(state.buffer, state.byteOffset, state.byteLength);
        const padding = Buffer.alloc((512 - (raw.length % 512)) % 512);
        const total = raw.length + padding.length + 32;
        const header = headerOut(server.header());
        const hash = createHash('sha256');
        let sent = 0;
        const send = async (blob: Buffer): Promise<void> => {
          sent += blob.length;
          if (call.write({ header, remainingBytes: total - sent, blob })) return;
          await new Promise<void>((resolve) => {
            const done = (): void => {
              for (const event of ['drain', 'close', 'cancelled']) call.off(event, done);
              resolve();
            };
            for (const event of ['drain', 'close', 'cancelled']) call.on(event, done);
          });
        };
        for (let off = 0; off < raw.length && !call.cancelled && !call.destroyed; off += SNAPSHOT_CHUNK) {
          const chunk = raw.subarray(off, off + SNAPSHOT_CHUNK);
          hash.update(chunk);
          await send(chunk);
        }
        if (call.cancelled || call.destroyed) return;
        hash.update(padding);
        await send(Buffer.concat([padding, hash.digest()]));
        call.end();
      } catch (err) {
        call.destroy(toServiceError(err, log));
      }
    },
  };
}
