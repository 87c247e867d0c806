export { V2Store, HISTORY_CAPACITY } from './store';
export type { NodeView, StoreStats, V2Action, V2Command, V2Event, V2Watcher } from './store';
export { V2Code, V2Error } from './errors';
