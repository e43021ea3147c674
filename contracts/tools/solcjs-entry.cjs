#!/usr/bin/env node
// A `solc`-compatible command line over the pinned solc-js (npm `solc`), so py-solc-x can
// drive it: `--version` prints solc's version banner, `--standard-json` reads the JSON
// input on stdin and prints only the JSON output. Calling the library directly (instead of
// solc-js's own CLI) means no `>>>` banner line is mixed into the JSON.
// Imports resolve against --base-path (the contracts folder) and node_modules.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const argv = process.argv.slice(2);
if (argv.includes('--version')) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}
if (!argv.includes('--standard-json')) {
  process.stderr.write('solcjs-entry: only --version and --standard-json are supported\n');
  process.exit(2);
}
const flagValue = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : null;
};
const roots = [];
const basePath = flagValue('--base-path');
if (basePath) roots.push(path.resolve(basePath));
const allow = flagValue('--allow-paths');
if (allow) allow.split(',').forEach((p) => roots.push(path.resolve(p)));
roots.push(path.resolve(__dirname, '..', '..', 'node_modules'));
roots.push(path.resolve(__dirname, '..'));

function findImports(importPath) {
  for (const root of roots) {
    const candidate = path.resolve(root, importPath);
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, 'utf8') };
  }
  return { error: `File not found: ${importPath} (searched ${roots.join(', ')})` };
}

const input = fs.readFileSync(0, 'utf8');
process.stdout.write(solc.compile(input, { import: findImports }));
