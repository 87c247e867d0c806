export * from './types';
export { ClientError, ClientErrorCode } from './errors';
