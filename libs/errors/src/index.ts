// etcd's errors as they cross the wire: a gRPC status code and the exact message etcd uses.
// Every layer throws EtcdError; the gRPC and HTTP boundaries translate it, nobody invents messages.

/** gRPC status codes (numbers fixed by the gRPC spec), kept here so libs need not import grpc-js. */
export enum GrpcCode {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

export class EtcdError extends Error {
  constructor(readonly code: GrpcCode, message: string) {
    super(message);
    this.name = 'EtcdError';
  }
}

const define = (code: GrpcCode, message: string) => () => new EtcdError(code, message);

/** Factories, so each throw gets a fresh stack. Messages are etcd 3.4's, byte for byte. */
export const Errors = {
  emptyKey: define(GrpcCode.INVALID_ARGUMENT, 'etcdserver: key is not provided'),
  keyNotFound: define(GrpcCode.INVALID_ARGUMENT, 'etcdserver: key not found'),
  valueProvided: define(GrpcCode.INVALID_ARGUMENT, 'etcdserver: value is provided'),
  leaseProvided: define(GrpcCode.INVALID_ARGUMENT, 'etcdserver: lease is provided'),
  tooManyOps: define(GrpcCode.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request'),
  duplicateKey: define(GrpcCode.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request'),
  compacted: define(GrpcCode.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'),
  futureRev: define(GrpcCode.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'),
  noSpace: define(GrpcCode.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded'),
  leaseNotFound: define(GrpcCode.NOT_FOUND, 'etcdserver: requested lease not found'),
  leaseExist: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: lease already exists'),
  leaseTTLTooLarge: define(GrpcCode.OUT_OF_RANGE, 'etcdserver: too large lease TTL'),
  memberExist: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: member ID already exist'),
  peerURLExist: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: Peer URLs already exists'),
  memberNotEnoughStarted: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: re-configuration failed due to not enough started members'),
  memberBadURLs: define(GrpcCode.INVALID_ARGUMENT, 'etcdserver: given member URLs are invalid'),
  memberNotFound: define(GrpcCode.NOT_FOUND, 'etcdserver: member not found'),
  memberNotLearner: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member'),
  learnerNotReady: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member which is in sync with leader'),
  tooManyLearners: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: too many learner members in cluster'),
  requestTooLarge: define(GrpcCode.INVALID_ARGUMENT, 'etcdserver: request is too large'),
  tooManyRequests: define(GrpcCode.RESOURCE_EXHAUSTED, 'etcdserver: too many requests'),
  noLeader: define(GrpcCode.UNAVAILABLE, 'etcdserver: no leader'),
  notLeader: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: not leader'),
  leaderChanged: define(GrpcCode.UNAVAILABLE, 'etcdserver: leader changed'),
  notCapable: define(GrpcCode.UNAVAILABLE, 'etcdserver: not capable'),
  stopped: define(GrpcCode.UNAVAILABLE, 'etcdserver: server stopped'),
  timeout: define(GrpcCode.UNAVAILABLE, 'etcdserver: request timed out'),
  timeoutDueToLeaderFail: define(GrpcCode.UNAVAILABLE, 'etcdserver: request timed out, possibly due to previous leader failure'),
  timeoutLeaderTransfer: define(GrpcCode.UNAVAILABLE, 'etcdserver: request timed out, leader transfer took too long'),
  timeoutDueToConnectionLost: define(GrpcCode.UNAVAILABLE, 'etcdserver: request timed out, possibly due to connection lost'),
  unhealthy: define(GrpcCode.UNAVAILABLE, 'etcdserver: unhealthy cluster'),
  corrupt: define(GrpcCode.DATA_LOSS, 'etcdserver: corrupt cluster'),
  notSupportedForLearner: define(GrpcCode.UNAVAILABLE, 'etcdserver: rpc not supported for learner'),
  badLeaderTransferee: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: bad leader transferee'),
  invalidArgument: (message: string) => new EtcdError(GrpcCode.INVALID_ARGUMENT, message),
  unimplemented: (what: string) => new EtcdError(GrpcCode.UNIMPLEMENTED, `nestcd: ${what} is not implemented`),
};
