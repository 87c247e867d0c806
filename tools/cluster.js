#!/usr/bin/env node
/**
 * `npm run cluster`: a local 3-member nestcd cluster on loopback, as etcd's Procfile runs one with goreman.
 *
 *   infra1  client http://127.0.0.1:2379   peer http://127.0.0.1:2380
 *   infra2  client http://127.0.0.1:22379  peer http://127.0.0.1:22380
 *   infra3  client http://127.0.0.1:32379  peer http://127.0.0.1:32380
 *
 * Each member's output lines are prefixed with its name. Ctrl-C (SIGINT) or SIGTERM stops all three.
 * Data lives in .nestcd-cluster/<name> (kept across runs, so a restart finds its data; --fresh wipes it first).
 * Builds dist/ first when it is missing.
 */
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const { existsSync, mkdirSync, rmSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const server = join(root, 'dist', 'apps', 'nestcd', 'src', 'main.js');
const launcher = join(root, 'bin', 'nestcd'); // with the node flags its first line sets
const dataRoot = join(root, '.nestcd-cluster');
const members = [
  { name: 'infra1', client: 2379, peer: 2380 },
  { name: 'infra2', client: 22379, peer: 22380 },
  { name: 'infra3', client: 32379, peer: 32380 },
];
const colors = [36, 33, 35];
const useColor = process.stdout.isTTY;

if (process.argv.includes('--help')) {
  process.stdout.write('usage: npm run cluster [-- --fresh]\n');
  process.exit(0);
}
if (process.argv.includes('--fresh')) rmSync(dataRoot, { recursive: true, force: true });
if (!existsSync(server)) {
  process.stdout.write('dist/ is missing: building first (npm run build)\n');
  const built = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  if (built.status !== 0) process.exit(built.status ?? 1);
}
mkdirSync(dataRoot, { recursive: true });

const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
const width = Math.max(...members.map((m) => m.name.length));
const children = new Map();
let stopping = false;

function prefixer(name, color, out) {
  const label = name.padEnd(width);
  const tag = useColor ? `\x1b[${color}m${label} |\x1b[0m ` : `${label} | `;
  let rest = '';
  return {
    push(chunk) {
      rest += chunk.toString('utf8');
      const lines = rest.split('\n');
      rest = lines.pop();
      for (const line of lines) out.write(`${tag}${line}\n`);
    },
    flush() {
      if (rest) out.write(`${tag}${rest}\n`);
      rest = '';
    },
  };
}

members.forEach((m, i) => {
  const args = [
    '--name', m.name,
    '--data-dir', join(dataRoot, m.name),
    '--listen-client-urls', `http://127.0.0.1:${m.client}`,
    '--advertise-client-urls', `http://127.0.0.1:${m.client}`,
    '--listen-peer-urls', `http://127.0.0.1:${m.peer}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peer}`,
    '--initial-cluster-token', 'etcd-cluster-1',
    '--initial-cluster', initialCluster,
    '--initial-cluster-state', 'new',
  ];
  const child = spawn(launcher, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = prefixer(m.name, colors[i], process.stdout);
  const err = prefixer(m.name, colors[i], process.stderr);
  child.stdout.on('data', (c) => out.push(c));
  child.stderr.on('data', (c) => err.push(c));
  child.on('exit', (code, signal) => {
    out.flush();
    err.flush();
    children.delete(m.name);
    process.stdout.write(`${m.name.padEnd(width)} | exited (${signal ?? `code ${code}`})\n`);
    if (children.size === 0) process.exit(stopping ? 0 : 1);
  });
  children.set(m.name, child);
});
process.stdout.write(`started ${members.map((m) => `${m.name} (http://127.0.0.1:${m.client})`).join(', ')}; Ctrl-C stops all\n`);

function stopAll(signal) {
  if (stopping) {
    // A second Ctrl-C: do not wait for graceful stops.
    for (const c of children.values()) c.kill('SIGKILL');
    return;
  }
  stopping = true;
  process.stdout.write(`\n${signal}: stopping ${[...children.keys()].join(', ')}\n`);
  for (const c of children.values()) c.kill('SIGTERM');
  setTimeout(() => {
    for (const c of children.values()) c.kill('SIGKILL');
  }, 10000).unref();
}
process.on('SIGINT', () => stopAll('SIGINT'));
process.on('SIGTERM', () => stopAll('SIGTERM'));
