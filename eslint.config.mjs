import tseslint from 'typescript-eslint';

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
    // Workflow code is bundled into Temporal's deterministic sandbox: no Node APIs, no activity implementations.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '../activities/*',
                '../activities/**',
                '../workers/**',
                'node:*',
                'fs',
                'child_process',
              ],
              allowTypeImports: true,
              message: 'workflows import only workflow-safe code',
            },
          ],
        },
      ],
    },
  },
);
