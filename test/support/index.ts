export * from './processes';
export * from './etcdctl';
export * from './normalize';
export * from './compat';
