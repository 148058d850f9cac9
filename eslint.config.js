import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { importX, createNodeResolver } from 'eslint-plugin-import-x';

/**
 * Which workspace packages each part may import: dependencies point one way (services → libs; the two front doors →
 * the shared parts; protocol → nothing), and neither front door imports the other. Checked per folder, like Nx's
 * module boundaries by tag, with ESLint's own rule.
 */
const forbidden = (...packages) => ({
  'no-restricted-imports': ['error', { patterns: packages.map((group) => ({ group: [group], message: 'wrong-way import: see the dependency rules in DESIGN.md / README.md' })) }],
});
const boundaries = [
  { files: ['libs/**/*.ts'], rules: forbidden('@ftp/edge', '@ftp/worker', '@ftp/edge/*', '@ftp/worker/*') },
  { files: ['libs/ftp-protocol/**/*.ts'], rules: forbidden('@ftp/*') },
  { files: ['libs/zero-copy/**/*.ts'], rules: forbidden('@ftp/*') },
  { files: ['libs/signing/**/*.ts'], rules: forbidden('@ftp/*') },
  { files: ['libs/sftp-session/**/*.ts'], rules: forbidden('@ftp/session', '@ftp/session/*', '@ftp/protocol', '@ftp/edge', '@ftp/worker') },
  { files: ['libs/ftp-session/**/*.ts'], rules: forbidden('@ftp/sftp-session', '@ftp/sftp-session/*', '@ftp/edge', '@ftp/worker') },
  {
    files: ['libs/session-core/**/*.ts', 'libs/storage/**/*.ts', 'libs/identity/**/*.ts', 'libs/cluster-state/**/*.ts', 'libs/telemetry/**/*.ts', 'libs/upload-events/**/*.ts', 'libs/config/**/*.ts'],
    rules: forbidden('@ftp/session', '@ftp/sftp-session', '@ftp/protocol', '@ftp/edge', '@ftp/worker'),
  },
  { files: ['services/worker/**/*.ts'], rules: forbidden('@ftp/session', '@ftp/sftp-session', '@ftp/session-core', '@ftp/edge') },
];

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '.nx/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js'] })],
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-control-regex': 'off',
      // Import cycles hide which module owns what; type-only imports are allowed (they vanish at run time).
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
    },
  },
  ...boundaries,
);
