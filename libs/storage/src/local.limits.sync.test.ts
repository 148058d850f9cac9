// The same suite with metadata calls made synchronously (metadataIo: 'sync', the server's default).
import { useMetadataIo } from './testFixture';

useMetadataIo('sync');
await import('./local.limits.test');
