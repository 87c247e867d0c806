import { Injectable, Logger } from '@nestjs/common';
import { Observable, map } from 'rxjs';
import { z } from 'zod';
import { CoordinationCore } from './core';
import { Keyspace, bytes, parseJson, segment } from './keys';
import { watchPrefix } from './prefix-watch';

export interface Heartbeat {
  id: string;
  /** when the beat was written (ms since epoch, writer's clock). */
  at: number;
  payload: unknown;
}

/** Liveness keys at <namespace>heartbeats/<id> under the session lease: they vanish when the process dies. */
@Injectable()
export class HeartbeatService {
  private readonly logger = new Logger('CoordinationHeartbeat');

  constructor(private readonly core: CoordinationCore) {}

  async beat(id: string = this.core.instanceId, payload: unknown = null): Promise<void> {
    const session = await this.core.liveSession();
    const hb: Heartbeat = { id, at: Date.now(), payload };
    await this.core.client.put({ key: bytes(this.core.keys.key('heartbeats', segment(id))), value: Buffer.from(JSON.stringify(hb)), lease: session.leaseId });
  }

  /** Who is alive, kept current. */
  alive$(): Observable<Heartbeat[]> {
    const prefix = this.core.keys.prefix('heartbeats');
    return watchPrefix(this.core.client, prefix, this.logger, this.core.closed).pipe(map((s) => [...s.kvs.values()].map((kv) => parseJson(kv.value) as Heartbeat)));
  }
}

export const taskStateSchema = z.enum(['pending', 'running', 'succeeded', 'failed', 'cancelled']);
export const taskReportSchema = z.object({
  percent: z.number().min(0).max(100),
  state: taskStateSchema,
  message: z.string().optional(),
});
export type TaskState = z.infer<typeof taskStateSchema>;
export type TaskReportInput = z.input<typeof taskReportSchema>;

export interface TaskStatus {
  taskId: string;
  worker: string;
  percent: number;
  state: TaskState;
  message?: string;
  updatedAt: number;
  /** the store revision of this report. */
  revision: number;
}

export interface ReportOptions {
  /**
   * false (default): the report lives under the worker's session and disappears with it (a dead worker's tasks
   * vanish). true: a plain key that survives the worker (for results that must stay).
   */
  durable?: boolean;
}

/** Workers report task progress at <namespace>tasks/<taskId>; a manager watches them all. */
@Injectable()
export class TaskRegistry {
  private readonly logger = new Logger('CoordinationTasks');

  constructor(private readonly core: CoordinationCore) {}

  async report(taskId: string, report: TaskReportInput, options: ReportOptions = {}): Promise<void> {
    const r = taskReportSchema.parse(report);
    const lease = options.durable ? undefined : (await this.core.liveSession()).leaseId;
    const body = { ...r, taskId, worker: this.core.instanceId, updatedAt: Date.now() };
    await this.core.client.put({ key: bytes(this.core.keys.key('tasks', segment(taskId))), value: Buffer.from(JSON.stringify(body)), lease });
  }

  async remove(taskId: string): Promise<void> {
    await this.core.client.deleteRange({ key: bytes(this.core.keys.key('tasks', segment(taskId))) });
  }

  /** Every task's last report, kept current (a dead worker's session-bound tasks drop out). */
  tasks$(): Observable<TaskStatus[]> {
    const prefix = this.core.keys.prefix('tasks');
    return watchPrefix(this.core.client, prefix, this.logger, this.core.closed).pipe(
      map((s) =>
        [...s.kvs.values()].map((kv) => {
          const v = parseJson(kv.value) as Omit<TaskStatus, 'revision'>;
          return { ...v, taskId: decodeURIComponent(Keyspace.rest(kv, prefix)), revision: kv.modRevision };
        }),
      ),
    );
  }
}
