"""One measured pass of ftpsSmallFiles.ts: N small uploads then their N downloads on one ftplib session, over FTPS
(AUTH TLS, PBSZ 0, PROT P; data connections resume the control connection's TLS session) or clear FTP.

stock ftplib, as the capacity report used it: storbinary/retrbinary, blocking sockets, Nagle's algorithm on.
Environment: BENCH_HOST, BENCH_PORT, BENCH_USER, BENCH_PASSWORD, BENCH_FILES, BENCH_SIZE, BENCH_PROTOCOL (tls | clear),
BENCH_PREFIX (names of this pass's files). Prints one JSON object.
"""
import hashlib
import io
import json
import os
import time
from ftplib import FTP, FTP_TLS


class ResumingFTP_TLS(FTP_TLS):
    """FTP_TLS whose protected data connections offer the control connection's TLS session (servers require it)."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size


def main():
    files = int(os.environ.get('BENCH_FILES', '300'))
    size = int(os.environ.get('BENCH_SIZE', '4096'))
    protocol = os.environ.get('BENCH_PROTOCOL', 'tls')
    prefix = os.environ.get('BENCH_PREFIX', 'small')
    ftp = ResumingFTP_TLS(timeout=30) if protocol == 'tls' else FTP(timeout=30)
    ftp.connect(os.environ['BENCH_HOST'], int(os.environ['BENCH_PORT']))
    ftp.login(os.environ['BENCH_USER'], os.environ['BENCH_PASSWORD'])
    if protocol == 'tls':
        ftp.prot_p()
    payloads = [os.urandom(size) for _ in range(files)]
    # Warm-up off the clock (code paths, the TLS session): ten of each.
    for i in range(10):
        ftp.storbinary(f'STOR {prefix}-warm-{i}', io.BytesIO(payloads[i]))
        ftp.retrbinary(f'RETR {prefix}-warm-{i}', lambda _chunk: None)

    upload_ms = []
    started = time.perf_counter()
    for i, payload in enumerate(payloads):
        t = time.perf_counter()
        ftp.storbinary(f'STOR {prefix}-{i}', io.BytesIO(payload))
        upload_ms.append((time.perf_counter() - t) * 1000)
    upload_s = time.perf_counter() - started

    received = []
    started = time.perf_counter()
    for i in range(files):
        chunks = []
        ftp.retrbinary(f'RETR {prefix}-{i}', chunks.append)
        received.append(b''.join(chunks))
    download_s = time.perf_counter() - started
    ftp.quit()

    bad = [i for i in range(files) if hashlib.sha256(received[i]).digest() != hashlib.sha256(payloads[i]).digest()]
    if bad:
        raise SystemExit(f'{len(bad)} files came back different, first {prefix}-{bad[0]}')
    upload_ms.sort()
    print(json.dumps({
        'uploads_per_s': files / upload_s,
        'downloads_per_s': files / download_s,
        'upload_ms_p50': upload_ms[len(upload_ms) // 2],
        'upload_ms_p90': upload_ms[int(len(upload_ms) * 0.9)],
        'uploads_over_35ms': sum(1 for ms in upload_ms if ms >= 35),
    }))


main()
