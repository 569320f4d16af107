// Lint is part of `make test`: the type-aware rules catch the mistakes a strict compiler lets
// through (floating promises above all, which turn into unhandled rejections in a server).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'bin/', 'node_modules/', 'coverage/', 'packages/*/dist/', 'packages/*/src/generated/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', ignoreRestSiblings: true }],
      'no-console': 'error',
      // Fastify plugins and handlers are async by contract, with or without an await inside.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // Configuration files outside the TypeScript project (tsconfig.json): linted without types.
    files: ['eslint.config.js', '.dependency-cruiser.mjs', 'packages/*/scripts/**', 'scripts/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
  },
  {
    // Command-line tools talk to a terminal, not to the log pipeline.
    files: ['src/cli/**', 'bench/**', 'test/reliability/report.ts'],
    rules: { 'no-console': 'off' },
  },
);
