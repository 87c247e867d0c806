/** Injection token of the KvClient the recipes use (inject it to reach the store directly). */
export const KV_CLIENT = Symbol('nestcd:kv-client');
