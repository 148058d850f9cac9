export { startAdminServer } from '@ftp/telemetry';
