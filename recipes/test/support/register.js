// Lets a plain `node` child process run the TypeScript sources (workers of the conformance suite):
// compiles .ts with @swc/core as the jest config does and resolves the @nestcd/* path aliases.
const Module = require('node:module');
const path = require('node:path');
const fs = require('node:fs');
const crypto = require('node:crypto');
const os = require('node:os');
const swc = require('@swc/core');

// compiled output is cached by content, so that the many workers of a run compile each file once
const cacheDir = path.join(os.tmpdir(), 'nestcd-recipes-swc-cache');
fs.mkdirSync(cacheDir, { recursive: true });

const root = path.resolve(__dirname, '..', '..', '..');
const originalResolve = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  const m = /^@nestcd\/(\w+)(\/.*)?$/.exec(request);
  if (m) {
    const base = m[1] === 'recipes' ? path.join(root, 'recipes', 'src') : path.join(root, 'libs', m[1], 'src');
    request = base + (m[2] ?? '');
  }
  return originalResolve.call(this, request, parent, ...rest);
};

require.extensions['.ts'] = function (module, filename) {
  const source = fs.readFileSync(filename, 'utf8');
  const cached = path.join(cacheDir, crypto.createHash('sha1').update(filename).update('\0').update(source).digest('hex') + '.js');
  if (fs.existsSync(cached)) return module._compile(fs.readFileSync(cached, 'utf8'), filename);
  const { code } = swc.transformSync(source, {
    filename,
    sourceMaps: 'inline',
    jsc: {
      target: 'es2023',
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
    },
    module: { type: 'commonjs' },
  });
  const tmp = `${cached}.${process.pid}`;
  fs.writeFileSync(tmp, code);
  fs.renameSync(tmp, cached);
  module._compile(code, filename);
};
