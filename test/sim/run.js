#!/usr/bin/env node
// Runs test/sim/cli.ts without a build step: compiles TypeScript with @swc/core (already a dev dependency)
// on require and maps the @nestcd/* path aliases, like jest does.
const path = require('node:path');
const fs = require('node:fs');
const Module = require('node:module');
const swc = require('@swc/core');

const root = path.resolve(__dirname, '..', '..');
const origResolve = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  const m = /^@nestcd\/(\w+)(\/.*)?$/.exec(request);
  if (m) request = path.join(root, 'libs', m[1], 'src', m[2] ?? '');
  return origResolve.call(this, request, parent, ...rest);
};
require.extensions['.ts'] = function (module, filename) {
  const src = fs.readFileSync(filename, 'utf8');
  const out = swc.transformSync(src, {
    filename,
    jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
    module: { type: 'commonjs' },
    sourceMaps: 'inline',
  });
  module._compile(out.code, filename);
};
require('./cli.ts');
