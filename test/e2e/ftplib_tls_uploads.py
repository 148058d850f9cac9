"""Small FTPS uploads through Python's ftplib, as in the capacity report: AUTH TLS, PBSZ 0, PROT P, then one
storbinary of 4 KiB after another on one session. Prints what it observed as JSON for ftpsSmallUploads.test.ts.

Data connections resume the control connection's TLS session (FTP_TLS_REQUIRE_REUSE is on by default), as FileZilla
and lftp do; stock ftplib does not, so ntransfercmd passes the session itself. Like stock ftplib, the data socket
keeps Nagle's algorithm on (no TCP_NODELAY): that is what made each upload wait for the server's delayed ACK.

Environment: FTP_HOST, FTP_PORT, FTP_USER, FTP_PASSWORD, FTP_UPLOADS (default 20).
"""
import hashlib
import io
import json
import os
import time
from ftplib import FTP_TLS


class ResumingFTP_TLS(FTP_TLS):
    """FTP_TLS whose protected data connections offer the control connection's TLS session."""

    def __init__(self):
        super().__init__(timeout=15)
        self.data_connections = []

    def ntransfercmd(self, cmd, rest=None):
        conn, size = super(FTP_TLS, self).ntransfercmd(cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
            self.data_connections.append({'version': conn.version(), 'resumed': conn.session_reused})
        return conn, size


def main():
    count = int(os.environ.get('FTP_UPLOADS', '20'))
    ftp = ResumingFTP_TLS()
    ftp.connect(os.environ['FTP_HOST'], int(os.environ['FTP_PORT']))
    ftp.login(os.environ['FTP_USER'], os.environ['FTP_PASSWORD'])
    ftp.prot_p()
    # One untimed upload first: the first transfer of a process pays for imports and code paths, not for the wire.
    ftp.storbinary('STOR warm-up.bin', io.BytesIO(os.urandom(4096)))
    uploads = []
    for i in range(count):
        payload = os.urandom(4096)
        name = f'small-{i}.bin'
        started = time.perf_counter()
        reply = ftp.storbinary(f'STOR {name}', io.BytesIO(payload))
        uploads.append({
            'name': name,
            'sha': hashlib.sha256(payload).hexdigest(),
            'reply': reply,
            'ms': (time.perf_counter() - started) * 1000,
        })
    ftp.quit()
    print(json.dumps({'uploads': uploads, 'data_connections': ftp.data_connections[1:]}))


main()
