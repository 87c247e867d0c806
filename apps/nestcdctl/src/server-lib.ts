// The parts of nestcdctl that need server code (version numbers, snapshot restore), required lazily by main.ts
// so every other command starts without loading the server.
export { parseConfig } from '@nestcd/config';
export { CLUSTER_VERSION, nestcdSnapshotStatus, restoreSnapshot, SERVER_VERSION } from '@nestcd/server';
