"""Informational and extension commands through Python's ftplib; prints what it observed as JSON.

Environment: FTP_HOST, FTP_PORT, FTP_USER, FTP_PASSWORD.
"""
import hashlib
import io
import json
import os
import socket
from ftplib import FTP, error_perm, parse229


def refused(call):
    """The error reply of a command that must fail, or None if it succeeded."""
    try:
        call()
    except error_perm as err:
        return str(err)
    return None


def main():
    out = {}
    user, password = os.environ['FTP_USER'], os.environ['FTP_PASSWORD']
    ftp = FTP(timeout=15)
    ftp.connect(os.environ['FTP_HOST'], int(os.environ['FTP_PORT']))
    out['host'] = ftp.sendcmd('HOST 127.0.0.1')  # RFC 7151: before USER
    out['login'] = ftp.login(user, password)
    out['host_after_login'] = refused(lambda: ftp.sendcmd('HOST 127.0.0.1'))

    out['feat'] = ftp.sendcmd('FEAT')
    out['opts_utf8'] = ftp.sendcmd('OPTS UTF8 ON')
    out['syst'] = ftp.sendcmd('SYST')
    out['acct'] = ftp.sendcmd('ACCT billing')
    out['allo'] = ftp.sendcmd('ALLO 1000')
    out['help'] = ftp.sendcmd('HELP')
    out['stat'] = ftp.sendcmd('STAT')

    # A small tree for MLSD, MLST, STAT path, MDTM, MFMT and HASH.
    payload = os.urandom(1234)
    ftp.mkd('facts')
    ftp.mkd('facts/sub')
    ftp.storbinary('STOR facts/a.bin', io.BytesIO(payload))
    ftp.storbinary('STOR facts/b.txt', io.BytesIO(b'bee'))
    out['mlsd'] = {name: facts for name, facts in ftp.mlsd('facts')}
    out['mlsd_some'] = {name: facts for name, facts in ftp.mlsd('facts', facts=['type', 'size'])}
    out['opts_mlst_all'] = ftp.sendcmd('OPTS MLST type;size;modify;perm;unique;')
    out['mlst'] = ftp.sendcmd('MLST facts/a.bin')
    ftp.rename('facts/b.txt', 'facts/c.txt')
    out['mlsd_after_rename'] = {name: facts for name, facts in ftp.mlsd('facts')}
    out['stat_path'] = ftp.sendcmd('STAT facts')

    out['mdtm'] = ftp.sendcmd('MDTM facts/a.bin')
    out['mfmt'] = ftp.sendcmd('MFMT 20200102030405 facts/a.bin')
    out['mdtm_after'] = ftp.sendcmd('MDTM facts/a.bin')

    out['hash'] = {}
    for algorithm, name in (('SHA-256', 'sha256'), ('SHA-1', 'sha1'), ('MD5', 'md5')):
        opts = ftp.sendcmd(f'OPTS HASH {algorithm}')
        out['hash'][algorithm] = {
            'opts': opts,
            'reply': ftp.sendcmd('HASH facts/a.bin'),
            'expected': hashlib.new(name, payload).hexdigest(),
        }
    out['size'] = len(payload)

    # EPSV ALL: PASV and PORT are refused from then on, EPSV transfers still work.
    out['epsv_all'] = ftp.sendcmd('EPSV ALL')
    out['pasv_after_all'] = refused(lambda: ftp.sendcmd('PASV'))
    out['port_after_all'] = refused(lambda: ftp.sendcmd('PORT 127,0,0,1,200,10'))
    host, port = parse229(ftp.sendcmd('EPSV'), ftp.sock.getpeername())
    conn = socket.create_connection((host, port), timeout=10)
    ftp.voidcmd('TYPE I')
    out['epsv_retr'] = ftp.sendcmd('RETR facts/a.bin')
    data = b''
    while chunk := conn.recv(65536):
        data += chunk
    conn.close()
    out['epsv_retr_final'] = ftp.voidresp()
    out['epsv_retr_ok'] = data == payload

    # REIN forgets the login and EPSV ALL; a new login works.
    out['rein'] = ftp.sendcmd('REIN')
    out['pwd_after_rein'] = refused(lambda: ftp.sendcmd('PWD'))
    out['relogin'] = ftp.login(user, password)
    out['pasv_after_rein'] = ftp.sendcmd('PASV')
    out['quit'] = ftp.quit()
    print(json.dumps(out))


main()
