import boundaries from 'eslint-plugin-boundaries';
import tseslint from 'typescript-eslint';

/**
 * The rooms of the house (README "Layout", DESIGN.md) and what each may import,
 * checked on resolved paths, so a violation is caught at any depth.
 */
const ROOMS = [
  'core',
  'stack',
  'activities',
  'workflows',
  'agents',
  'workers',
  'cli',
  'scripts',
  'test',
  'bench',
  'config',
];

/** What each room may import of ours (value imports); `typeOnly` may be imported with `import type` only. */
export const ROOM_POLICY = {
  // The ground floor: imports nothing of ours.
  core: { allow: ['core'] },
  stack: { allow: ['core', 'stack', 'config'] },
  activities: { allow: ['core', 'stack', 'activities'] },
  // Deterministic code, bundled by the worker.
  workflows: { allow: ['core', 'workflows'], typeOnly: ['activities'] },
  // Agents and pipelines are workflow code too: they are written with the pipeline helpers.
  agents: { allow: ['core', 'workflows', 'agents'] },
  workers: { allow: ['core', 'stack', 'activities', 'workers', 'config'] },
  cli: { allow: ['core', 'stack', 'activities', 'workflows', 'agents', 'workers', 'cli', 'config'] },
  // Entry points: nothing imports them.
  scripts: { allow: ROOMS.filter((r) => r !== 'bench') },
  test: { allow: ROOMS.filter((r) => r !== 'scripts' && r !== 'bench') },
  bench: { allow: ROOMS.filter((r) => r !== 'scripts') },
  config: { allow: [] },
};

/** Code that runs in Temporal's deterministic workflow sandbox (or is imported by it). */
const SANDBOXED = ['core/**/*.ts', 'workflows/**/*.ts', 'agents/**/*.ts'];
const NOT_IN_SANDBOX = [
  'node:*',
  'fs',
  'path',
  'os',
  'child_process',
  'http',
  'https',
  'crypto',
  'net',
  '@temporalio/activity',
  '@temporalio/client',
  '@temporalio/worker',
  '@temporalio/testing',
  'pino',
  'prom-client',
  '@qdrant/js-client-rest',
  '@kubernetes/client-node',
];

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      '.venv/**',
      '.state/**',
      '.state-*/**',
      'test/replay/histories/**',
      'bench/results/**',
      '**/*.js',
      '**/*.mjs',
    ],
  },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.ts'],
    plugins: { boundaries },
    settings: {
      'boundaries/elements': ROOMS.map((room) => ({ type: room, pattern: room })),
      'boundaries/include': ROOMS.map((room) => `${room}/**/*`),
      'import/resolver': { node: { extensions: ['.ts', '.js', '.json'] } },
    },
    rules: {
      'boundaries/dependencies': [
        'error',
        {
          default: 'disallow',
          policies: Object.entries(ROOM_POLICY).flatMap(([room, { allow, typeOnly = [] }]) => [
            ...(allow.length > 0
              ? [
                  {
                    from: { element: { type: room } },
                    allow: { to: { element: { types: { anyOf: allow } } } },
                  },
                ]
              : []),
            ...(typeOnly.length > 0
              ? [
                  {
                    from: { element: { type: room } },
                    allow: { to: { element: { types: { anyOf: typeOnly } } }, dependency: { kind: 'type' } },
                  },
                ]
              : []),
          ]),
        },
      ],
    },
  },
  {
    files: SANDBOXED,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: NOT_IN_SANDBOX,
              allowTypeImports: true,
              message: 'workflow code (and the ground floor it imports) runs in Temporal’s sandbox: no I/O',
            },
          ],
        },
      ],
    },
  },
);
