// The same suite with metadata calls made synchronously (metadataIo: 'sync').
import { useMetadataIo } from './testFixture';

useMetadataIo('sync');
await import('./local.paths.test');
