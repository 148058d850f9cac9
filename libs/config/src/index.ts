export { loadConfig, configPathFromArgv, ConfigError } from './config';
export type { FtpConfig } from './config';
