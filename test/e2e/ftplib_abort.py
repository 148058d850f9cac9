"""Aborts a download the way Python's ftplib does it, then checks the session is still usable.

Usage: ftplib_abort.py HOST PORT USER PASSWORD FILE
Prints one JSON object with every reply; exits non-zero on any ftplib error.
"""
import ftplib
import json
import sys

host, port, user, password, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
out = {}
ftp = ftplib.FTP()
ftp.connect(host, port, timeout=10)
ftp.login(user, password)
ftp.voidcmd('TYPE I')
conn = ftp.transfercmd('RETR ' + name)
received = 0
while received < 1 << 20:
    chunk = conn.recv(65536)
    if not chunk:
        break
    received += len(chunk)
out['received'] = received
# Sends b'ABOR\r\n' with MSG_OOB: the kernel delivers the last byte out of band, so the server sees 'ABOR\r'.
out['abort'] = ftp.abort()
# RFC 959: the aborted transfer is answered 426, then ABOR itself 226; ftplib.abort() reads only the first.
if out['abort'].startswith('426'):
    out['abort_final'] = ftp.voidresp()
conn.close()
out['noop'] = ftp.voidcmd('NOOP')
out['nlst'] = ftp.nlst()
out['quit'] = ftp.quit()
print(json.dumps(out))
