"""Transfers through Python's ftplib; prints what it observed as JSON for ftplib.test.ts to check.

Environment: FTP_HOST, FTP_PORT, FTP_USER, FTP_PASSWORD.
"""
import hashlib
import io
import json
import os
import socket
from ftplib import FTP


class RecordingFTP(FTP):
    """Remembers every command sent, so the test can tell which data-channel commands were used."""

    def __init__(self):
        super().__init__(timeout=15)
        self.sent = []

    def putcmd(self, line):
        self.sent.append(line if not line.startswith('PASS ') else 'PASS ***')
        super().putcmd(line)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def retr(ftp, command, rest=None):
    chunks = []
    ftp.retrbinary(command, chunks.append, rest=rest)
    return b''.join(chunks)


def main():
    out = {}
    ftp = RecordingFTP()
    ftp.connect(os.environ['FTP_HOST'], int(os.environ['FTP_PORT']))
    out['login'] = ftp.login(os.environ['FTP_USER'], os.environ['FTP_PASSWORD'])

    # Binary round trip, then a download resumed with REST.
    payload = os.urandom(2 * 1024 * 1024 + 123)
    out['payload_sha'] = sha(payload)
    out['stor'] = ftp.storbinary('STOR bin.dat', io.BytesIO(payload))
    out['retr_sha'] = sha(retr(ftp, 'RETR bin.dat'))
    out['retr_rest_sha'] = sha(retr(ftp, 'RETR bin.dat', rest=1_000_000))
    out['tail_sha'] = sha(payload[1_000_000:])
    out['size'] = ftp.size('bin.dat')

    # An upload resumed with REST + STOR from where the first part ended.
    ftp.storbinary('STOR resumed.dat', io.BytesIO(payload[:700_000]))
    rest = io.BytesIO(payload)
    rest.seek(700_000)
    out['stor_rest'] = ftp.storbinary('STOR resumed.dat', rest, rest=700_000)

    # ASCII: storlines sends CRLF lines, retrlines strips them.
    out['storlines'] = ftp.storlines('STOR text.txt', io.BytesIO(b'line one\nline two\r\nline three\n'))
    lines = []
    out['retrlines'] = ftp.retrlines('RETR text.txt', lines.append)
    out['lines'] = lines

    # UTF-8 names (ftplib speaks UTF-8 since Python 3.9).
    name = 'zoë-日本.txt'
    out['utf8_opts'] = ftp.sendcmd('OPTS UTF8 ON')
    ftp.storbinary(f'STOR {name}', io.BytesIO(name.encode('utf-8') * 100))
    out['utf8_back'] = retr(ftp, f'RETR {name}') == name.encode('utf-8') * 100
    out['nlst'] = sorted(ftp.nlst())

    # Active mode: the server connects back to the PORT ftplib announces.
    ftp.set_pasv(False)
    active = os.urandom(512 * 1024 + 5)
    out['active_stor'] = ftp.storbinary('STOR active.dat', io.BytesIO(active))
    out['active_ok'] = retr(ftp, 'RETR active.dat') == active
    out['active_sha'] = sha(active)
    ftp.set_pasv(True)

    # STOU: the server picks the name and announces it in the 150 reply.
    host, port = ftp.makepasv()
    conn = socket.create_connection((host, port), timeout=10)
    out['stou_150'] = ftp.sendcmd('STOU')
    conn.sendall(b'unique bytes')
    conn.close()
    out['stou_final'] = ftp.voidresp()

    out['sent'] = ftp.sent
    out['quit'] = ftp.quit()
    print(json.dumps(out))


main()
