#!/usr/bin/env node
// `solc` for slither (crytic-compile): forces our build's settings (viaIR, optimizer 200
// runs, cancun; see marketplace/chain/compile.py) onto the standard-JSON input that
// crytic-compile writes, which sets neither viaIR nor the EVM version, then hands it to
// solcjs-entry.cjs. Without viaIR the contracts do not compile ("stack too deep").
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const entry = path.join(__dirname, 'solcjs-entry.cjs');
const argv = process.argv.slice(2);
let input;
if (argv.includes('--standard-json')) {
  const json = JSON.parse(fs.readFileSync(0, 'utf8'));
  json.settings = json.settings || {};
  json.settings.viaIR = true;
  json.settings.optimizer = { enabled: true, runs: 200 };
  json.settings.evmVersion = 'cancun';
  input = JSON.stringify(json);
}
const run = spawnSync(process.execPath, [entry, ...argv], {
  input, maxBuffer: 1 << 30, stdio: [input === undefined ? 'inherit' : 'pipe', 'inherit', 'inherit'],
});
process.exit(run.status === null ? 1 : run.status);
