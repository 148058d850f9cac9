// Public API of @ftp/upload-events: the contract between the FTP edge (producer) and the workers (consumers).
export * from './types';
export { createUploadPublisher, type PublishOutcome, type UploadPublisher, type UploadPublisherOptions } from './publisher';
