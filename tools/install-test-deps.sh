#!/usr/bin/env bash
# What the tests need from the machine (Debian 12 packages), checked command by command.
#   tools/install-test-deps.sh [all|deploy] [--check]
# Nothing missing: returns at once (no apt-get, no network). Something missing: as root, installs the Debian packages
# that provide it (apt-get, no recommends, no service started); otherwise, or with --check, prints the exact command
# and exits 1. `all` (the default) is what `npm test` needs; `deploy` what `npm run test:deploy` needs.
# Then makes sure PostgreSQL answers on FTP_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres;
# the user store tests create and drop databases of their own there): a local cluster that is not running is started.
# And that Redis answers on REDIS_URL (default redis://127.0.0.1:6379): a local one that is not running is started
# (127.0.0.1 only, nothing saved), as .ci/run always did.
# Called by tools/test.sh before every run and by .ci/run. FTP_TEST_DEPS=skip turns it off.
set -euo pipefail

scope=all
check_only=0
for arg in "$@"; do
  case "$arg" in
    all | deploy) scope=$arg ;;
    --check) check_only=1 ;;
    *) echo "usage: $0 [all|deploy] [--check]" >&2; exit 2 ;;
  esac
done
if [ "${FTP_TEST_DEPS:-}" = skip ]; then exit 0; fi

# A command on PATH or in the sbin folders, which a non-root PATH may lack (Debian puts haproxy, clamd and sshd there).
has() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local dir
  for dir in /usr/sbin /usr/local/sbin /sbin; do [ -x "$dir/$1" ] && return 0; done
  return 1
}
# paramiko for Debian's own python3, which the SFTP tests run (test/support/sftpClient.ts SYSTEM_PYTHON): a pyenv or
# venv python3 first on PATH may have paramiko while /usr/bin/python3 lacks it. Found, not imported: fast.
has_paramiko() {
  [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("paramiko") is None)' 2>/dev/null
}
# rados (python3-rados) for Debian's python3: test/support/radosgw.ts sends its mon commands through it, as the `ceph`
# CLI does. ceph-mon pulls it in; checked apart so a broken install is named here.
has_python_rados() {
  [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("rados") is None)' 2>/dev/null
}

all_of() { local c; for c in "$@"; do has "$c" || return 1; done; }
# A PostgreSQL server cluster (Debian's postgresql: pg_ctlcluster and a cluster under /etc/postgresql) and its client.
has_postgres() { has pg_ctlcluster && has pg_isready && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; }
need() { # need PACKAGE REASON CHECK...: PACKAGE is missing unless CHECK succeeds
  local package=$1 reason=$2
  shift 2
  if ! "$@"; then missing+=("$package"); why+=("$(printf '  %-18s %s' "$package" "$reason")"); fi
}

# Fills `missing` (Debian packages) and `why` (what each provides, for the message).
check_packages() {
  missing=()
  why=()
  # The deploy checks (test/deploy): HAProxy, docker-compose 1.29 (parses the compose file offline, no engine needed)
  # and Redis.
  need haproxy 'haproxy' has haproxy
  need docker-compose 'docker-compose' has docker-compose
  need redis-server 'redis-server' has redis-server
  need redis-tools 'redis-cli' has redis-cli
  if [ "$scope" = all ]; then
    need curl 'curl, ftp:// and sftp://' has curl
    need lftp 'lftp' has lftp
    need python3 'python3, ftplib' has python3
    # Tests run their own clamd with their own signature, never the package's services or freshclam.
    need clamav-daemon 'clamd' has clamd
    # SFTP: OpenSSH's clients, sshpass for password logins, paramiko, ssh-audit; sshd (openssh-server) is only run by
    # the benchmark with its own config on a loopback port, never as the system service.
    need openssh-client 'ssh, sftp, scp, ssh-keygen' all_of ssh sftp scp ssh-keygen
    need openssh-server 'sshd' has sshd
    need sshpass 'sshpass' has sshpass
    need python3-paramiko 'paramiko' has_paramiko
    need ssh-audit 'ssh-audit' has ssh-audit
    # The storage tests check on real syscalls that an upload's directory is flushed after its rename.
    need strace 'strace' has strace
    # npm ci builds the zero-copy addon (libs/zero-copy, node-gyp) with python3 (above), make and g++; without them
    # the server falls back to streams and the zero-copy tests could only skip.
    need make 'make (zero-copy addon)' has make
    need g++ 'g++ (zero-copy addon)' has g++
    # The PostgreSQL user store's tests run against a real server (databases of their own, dropped after).
    need postgresql 'PostgreSQL server' has_postgres
    # The S3 storage tests run against a real S3 server: a throw-away one-node Ceph (one mon, one in-RAM OSD, radosgw)
    # with its own config in a temp folder (test/support/radosgw.ts), never the packages' services. Ceph 16, ~60 MB.
    need radosgw 'radosgw (S3 tests)' has radosgw
    need ceph-mon 'ceph-mon, monmaptool, radosgw-admin' all_of ceph-mon monmaptool radosgw-admin
    need ceph-osd 'ceph-osd' has ceph-osd
    need python3-rados 'rados for /usr/bin/python3' has_python_rados
    # The link harness (test/support/netns.ts: namespaces with delay, loss and a rate cap) and its smoke test.
    need iproute2 'ip, tc' all_of ip tc
    need iptables 'iptables (loss and delay where the kernel has no netem)' has iptables
    need ethtool 'ethtool (segmentation offloads off on the test links)' has ethtool
    need iputils-ping 'ping' has ping
  fi
}

check_packages
if [ ${#missing[@]} -gt 0 ]; then
  command="apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$check_only" = 1 ] || [ "$(id -u)" != 0 ] || ! has apt-get; then
    {
      echo "The tests need programs this machine lacks (Debian package, what it provides):"
      printf '%s\n' "${why[@]}"
      if [ "$(id -u)" = 0 ]; then echo "Install them:  apt-get update && $command"
      else echo "Install them:  sudo apt-get update && sudo $command"; fi
      echo "(as root the tests install them themselves; FTP_TEST_DEPS=skip runs the tests anyway)"
    } >&2
    exit 1
  fi
  echo "installing: ${missing[*]}" >&2
  # No service may start from a package's maintainer scripts (sshd on port 22, haproxy, clamav, redis with the
  # packages' configuration): policy-rc.d answers "forbidden" to invoke-rc.d while we install, on machines with or
  # without systemd. Only a file we created is removed again.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    trap 'rm -f "$policy"' EXIT
    printf '#!/bin/sh\n# tools/install-test-deps.sh: no service starts while it installs\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
  if [ "$created_policy" = 1 ]; then
    rm -f "$policy"
    trap - EXIT
  fi
  # PostgreSQL was absent: its new cluster lets the tests in as postgres from 127.0.0.1 without a password (trust, on
  # loopback only), as on the machines the tests were written on. A cluster that was here before is left as it is.
  if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    for conf in /etc/postgresql/*/main; do
      printf "listen_addresses = '127.0.0.1'\n" >"$conf/conf.d/90-ftp-tests.conf"
      sed -i '1i host all postgres 127.0.0.1/32 trust' "$conf/pg_hba.conf"
    done
  fi
  # sshd was absent, so its system service is new: keep it from starting at the next boot too (port 22 stays closed).
  if [[ " ${missing[*]} " == *" openssh-server "* ]]; then
    if [ -d /run/systemd/system ]; then systemctl disable --quiet ssh.service ssh.socket >/dev/null 2>&1 || true; fi
    if has update-rc.d; then update-rc.d ssh disable >/dev/null 2>&1 || true; fi
  fi
  # Ceph was absent, so its system units are new (the packages enable ceph.target, ceph-crash and the per-daemon
  # targets): keep them from starting at the next boot; the tests start their own daemons.
  if [[ " ${missing[*]} " == *" radosgw "* || " ${missing[*]} " == *" ceph-mon "* || " ${missing[*]} " == *" ceph-osd "* ]]; then
    if [ -d /run/systemd/system ]; then
      systemctl disable --quiet ceph.target ceph-crash.service ceph-mon.target ceph-osd.target ceph-radosgw.target >/dev/null 2>&1 || true
    fi
  fi
  # Check again: a package that installed but does not provide the command is an error here, not in 30 tests.
  check_packages
  if [ ${#missing[@]} -gt 0 ]; then
    { echo "still missing after apt-get install:"; printf '%s\n' "${why[@]}"; } >&2
    exit 1
  fi
fi

# PostgreSQL: the user store's tests connect to FTP_TEST_DATABASE_URL; a local cluster that is down is started.
if [ "$scope" = all ]; then
  pg_url=${FTP_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
  pg_ok() { pg_isready -q -d "$pg_url" 2>/dev/null; }
  if ! pg_ok; then
    case "$pg_url" in
      postgres://*@127.0.0.1:5432/* | postgres://*@localhost:5432/* | postgresql://*@127.0.0.1:5432/* | postgresql://*@localhost:5432/*)
        version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
        if [ "$check_only" = 1 ] || [ -z "$version" ]; then
          echo "PostgreSQL does not answer on $pg_url; start it:" >&2
          echo "  pg_ctlcluster --skip-systemctl-redirect ${version:-VERSION} main start" >&2
          exit 1
        fi
        echo "starting PostgreSQL $version on 127.0.0.1:5432" >&2
        pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
        for _ in $(seq 1 100); do pg_ok && break; sleep 0.1; done
        pg_ok || { echo "PostgreSQL $version did not start on 127.0.0.1:5432" >&2; exit 1; }
        ;;
      *)
        echo "PostgreSQL does not answer on FTP_TEST_DATABASE_URL=$pg_url" >&2
        exit 1
        ;;
    esac
  fi
fi

# Redis: the tests' cluster state, upload events and deploy checks use REDIS_URL (default the local one). A TLS URL
# (rediss://) needs client certificates or CA options redis-cli does not get here: the tests themselves will tell.
url=${REDIS_URL:-redis://127.0.0.1:6379}
redis_ok() { [ "$(redis-cli -u "$url" ping 2>/dev/null)" = PONG ]; }
case "$url" in rediss://*) exit 0 ;; esac
if ! redis_ok; then
  case "$url" in
    redis://127.0.0.1:6379 | redis://127.0.0.1:6379/* | redis://localhost:6379 | redis://localhost:6379/*)
      if [ "$check_only" = 1 ]; then
        echo "Redis does not answer on $url; start it:" >&2
        echo "  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no" >&2
        exit 1
      fi
      echo "starting redis-server on 127.0.0.1:6379" >&2
      redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
      for _ in $(seq 1 50); do redis_ok && break; sleep 0.1; done
      redis_ok || { echo "redis-server did not start on 127.0.0.1:6379" >&2; exit 1; }
      ;;
    *)
      echo "Redis does not answer PONG on REDIS_URL=$url" >&2
      exit 1
      ;;
  esac
fi
