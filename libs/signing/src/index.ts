export { hmacSignature, signedHeaders, verifyHmacSignature, SIGNATURE_HEADER, TIMESTAMP_HEADER } from './hmac';
