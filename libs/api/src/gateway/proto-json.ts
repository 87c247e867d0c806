// proto3 JSON as etcd's grpc-gateway speaks it (gogo jsonpb, OrigName): original field names, bytes as base64,
// 64-bit integers as strings, enums by name, fields at their default left out. Requests are checked with zod
// schemas derived from the same .proto reflection, so one table drives validation and conversion both ways.
import * as protobuf from 'protobufjs';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { PROTO_DIR } from '../proto';

const LONG_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const INT32_TYPES = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

let root: protobuf.Root | undefined;

/** etcd's messages with their .proto field names (keepCase), resolved once. */
function protoRoot(): protobuf.Root {
  if (!root) {
    const r = new protobuf.Root();
    r.resolvePath = (_origin, target) => (existsSync(join(PROTO_DIR, target)) ? join(PROTO_DIR, target) : target);
    r.loadSync(['rpc.proto', 'kv.proto', 'auth.proto'], { keepCase: true });
    r.resolveAll();
    root = r;
  }
  return root;
}

export function messageType(name: string): protobuf.Type {
  return protoRoot().lookupType(name.includes('.') ? name : `etcdserverpb.${name}`);
}

/** The field name @grpc/proto-loader (keepCase: false) gives the handlers. */
const handlerName = (f: protobuf.Field): string => protobuf.util.camelCase(f.name);

const int64Schema = z
  .union([z.string().regex(/^-?\d+$/, 'not an integer'), z.number().int('not an integer')])
  .transform((v) => BigInt(v))
  .refine((v) => v >= -(2n ** 63n) && v < 2n ** 64n, 'out of the 64-bit range')
  .transform((v) => v.toString());

const int32Schema = z
  .union([z.string().regex(/^-?\d+$/, 'not an integer').transform(Number), z.number().int('not an integer')])
  .refine((v) => v >= -(2 ** 31) && v < 2 ** 32, 'out of the 32-bit range');

const bytesSchema = z
  .string()
  .refine((s) => BASE64.test(s), 'illegal base64 data')
  .transform((s) => Buffer.from(s, 'base64'));

function scalarSchema(field: protobuf.Field): z.ZodType {
  if (field.resolvedType instanceof protobuf.Type) return requestSchema(field.resolvedType);
  if (field.resolvedType instanceof protobuf.Enum) {
    const values = field.resolvedType.values;
    const goName = goEnumName(field.resolvedType);
    return z.unknown().transform((v, ctx) => {
      if (typeof v === 'string' && Object.hasOwn(values, v)) return values[v];
      if (typeof v === 'number' && Number.isInteger(v)) return v; // jsonpb takes any number for an enum
      // jsonpb's own words, which is what etcd answers
      ctx.addIssue({ code: 'custom', message: `unknown value ${JSON.stringify(v)} for enum ${goName}`, params: { bare: true } });
      return z.NEVER;
    });
  }
  if (LONG_TYPES.has(field.type)) return int64Schema;
  if (INT32_TYPES.has(field.type)) return int32Schema;
  switch (field.type) {
    case 'bytes': return bytesSchema;
    case 'bool': return z.boolean();
    case 'string': return z.string();
    case 'double': case 'float': return z.number();
    default: throw new Error(`proto-json: unsupported field type ${field.type}`);
  }
}

function defaultFor(field: protobuf.Field): unknown {
  if (field.repeated) return [];
  if (field.resolvedType instanceof protobuf.Type) return null;
  if (field.resolvedType instanceof protobuf.Enum) return 0;
  if (LONG_TYPES.has(field.type)) return '0';
  switch (field.type) {
    case 'bytes': return Buffer.alloc(0);
    case 'bool': return false;
    case 'string': return '';
    default: return 0;
  }
}

const schemas = new Map<protobuf.Type, z.ZodType>();

/**
 * A zod schema that accepts the JSON form of `type` (both the .proto and the lowerCamel names, unknown fields
 * ignored, as jsonpb does) and yields the object proto-loader would hand a gRPC handler: camelCase names,
 * Buffers, int64 as decimal strings, enums as numbers, defaults filled in, and each oneof's case named.
 */
export function requestSchema(type: protobuf.Type): z.ZodType {
  let schema = schemas.get(type);
  if (schema) return schema;
  schema = z.lazy(() => {
    const shape: Record<string, z.ZodType> = {};
    for (const field of type.fieldsArray) {
      const one = scalarSchema(field);
      const value = (field.repeated ? z.array(one) : one).nullable().optional();
      shape[field.name] = value;
      if (handlerName(field) !== field.name) shape[handlerName(field)] = value;
    }
    return z.object(shape).transform((json: Record<string, unknown>) => {
      const out: Record<string, unknown> = {};
      for (const field of type.fieldsArray) {
        const given = json[field.name] ?? json[handlerName(field)];
        if (given !== undefined && given !== null) out[handlerName(field)] = given;
        else if (!field.partOf) out[handlerName(field)] = defaultFor(field);
      }
      for (const oneof of type.oneofsArray) {
        const set = oneof.fieldsArray.find((f) => out[handlerName(f)] !== undefined);
        if (set) out[protobuf.util.camelCase(oneof.name)] = handlerName(set);
      }
      return out;
    });
  });
  schemas.set(type, schema);
  return schema;
}

/** The Go type name gogo gives a nested enum: etcdserverpb.AlarmRequest_AlarmAction. */
function goEnumName(e: protobuf.Enum): string {
  const names: string[] = [];
  let pkg = '';
  for (let p: protobuf.ReflectionObject | null = e; p; p = p.parent) {
    if (p instanceof protobuf.Type || p instanceof protobuf.Enum) names.unshift(p.name);
    else if (p instanceof protobuf.Namespace && p.name) {
      pkg = p.name;
      break;
    }
  }
  return `${pkg}.${names.join('_')}`;
}

/** A zod failure as one line that says which field is wrong and why. */
export function describeZodError(err: z.ZodError): string {
  const issue = err.issues[0];
  if (issue.code === 'custom' && (issue.params as { bare?: boolean } | undefined)?.bare) return issue.message;
  const where = issue.path.length > 0 ? issue.path.join('.') : 'body';
  return `${where}: ${issue.message}`;
}

function isDefault(field: protobuf.Field, v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (field.repeated) return Array.isArray(v) && v.length === 0;
  if (field.resolvedType instanceof protobuf.Type) return false;
  if (typeof v === 'boolean') return !v;
  if (typeof v === 'number') return v === 0;
  if (typeof v === 'bigint') return v === 0n;
  if (typeof v === 'string') return field.type === 'string' || field.type === 'bytes' ? v === '' : v === '0' || v === '-0';
  if (v instanceof Uint8Array) return v.length === 0;
  if (protobuf.util.isInteger((v as protobuf.Long).low) && protobuf.util.isInteger((v as protobuf.Long).high)) return (v as protobuf.Long).low === 0 && (v as protobuf.Long).high === 0;
  return false;
}

function scalarToJson(field: protobuf.Field, v: unknown): unknown {
  if (field.resolvedType instanceof protobuf.Type) return toProtoJson(field.resolvedType, v as object);
  if (field.resolvedType instanceof protobuf.Enum) {
    return typeof v === 'number' ? (field.resolvedType.valuesById[v] ?? v) : v;
  }
  if (LONG_TYPES.has(field.type)) return String(v);
  if (field.type === 'bytes') {
    if (typeof v === 'string') return Buffer.from(v).toString('base64');
    return Buffer.from(v as Uint8Array).toString('base64');
  }
  if (INT32_TYPES.has(field.type)) return Number(v);
  return v;
}

/** A handler's response object (camelCase or .proto names) as grpc-gateway renders it. */
export function toProtoJson(type: protobuf.Type, obj: object): Record<string, unknown> {
  const src = obj as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    const v = src[handlerName(field)] ?? src[field.name];
    if (isDefault(field, v)) continue;
    out[field.name] = field.repeated ? (v as unknown[]).map((e) => scalarToJson(field, e)) : scalarToJson(field, v);
  }
  return out;
}
