#!/usr/bin/env node
// The `pantheon` command: runs the TypeScript CLI through tsx (a dependency), no build step.
require('tsx/cjs');
require('./pantheon').main();
