import { EtcdError, GrpcCode } from '@nestcd/errors';

const define = (code: GrpcCode, message: string) => () => new EtcdError(code, message);

/** etcd 3.4's auth errors (etcdserver/api/v3rpc/rpctypes), codes and messages byte for byte. */
export const AuthErrors = {
  rootUserNotExist: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: root user does not exist'),
  rootRoleNotExist: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: root user does not have root role'),
  userAlreadyExist: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: user name already exists'),
  userEmpty: define(GrpcCode.INVALID_ARGUMENT, 'etcdserver: user name is empty'),
  userNotFound: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: user name not found'),
  roleAlreadyExist: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: role name already exists'),
  roleNotFound: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: role name not found'),
  roleEmpty: define(GrpcCode.INVALID_ARGUMENT, 'etcdserver: role name is empty'),
  authFailed: define(GrpcCode.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password'),
  permissionDenied: define(GrpcCode.PERMISSION_DENIED, 'etcdserver: permission denied'),
  roleNotGranted: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: role is not granted to the user'),
  permissionNotGranted: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: permission is not granted to the role'),
  authNotEnabled: define(GrpcCode.FAILED_PRECONDITION, 'etcdserver: authentication is not enabled'),
  invalidAuthToken: define(GrpcCode.UNAUTHENTICATED, 'etcdserver: invalid auth token'),
  invalidAuthMgmt: define(GrpcCode.INVALID_ARGUMENT, 'etcdserver: invalid auth management'),
  authOldRevision: define(GrpcCode.INVALID_ARGUMENT, 'etcdserver: revision of auth store is old'),
};
