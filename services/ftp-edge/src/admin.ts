export { startAdminServer, startHaproxyAgent } from '@ftp/telemetry';
