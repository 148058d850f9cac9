#!/usr/bin/env bash
# Runs tests with node's test runner (one process tree, one closing summary).
#   tools/test.sh            every unit test, every end-to-end test, the deploy checks, the load generator's tests and
#                            the short chaos run (test/chaos)
#   tools/test.sh unit       unit tests beside the code (libs/, services/)
#   tools/test.sh e2e        end-to-end tests (test/e2e)
#   tools/test.sh deploy     offline checks of the deploy files (test/deploy: Dockerfiles, compose, k8s/)
#   tools/test.sh dir DIR    unit tests under DIR
# First tools/install-test-deps.sh checks what the tests need from the machine (haproxy, clamd, OpenSSH, Redis, …):
# as root it installs what is missing, otherwise it stops with the apt-get command to run. FTP_TEST_DEPS=skip skips it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
case "${1:-all}" in
  unit) files=$(find libs services -path '*/node_modules' -prune -o -name '*.test.ts' -print | sort) ;;
  e2e) files=$(find test/e2e -name '*.test.ts' | sort) ;;
  dir) files=$(find "$2" -path '*/node_modules' -prune -o -name '*.test.ts' -print | sort) ;;
  deploy) files=$(find test/deploy -name '*.test.ts' | sort) ;;
  all) files=$( (find libs services -path '*/node_modules' -prune -o -name '*.test.ts' -print; find test/e2e test/deploy test/load test/chaos -name '*.test.ts') | sort) ;;
  *) echo "usage: $0 [unit|e2e|deploy|dir DIR]" >&2; exit 2 ;;
esac
if [ -z "$files" ]; then echo "no test files found" >&2; exit 1; fi
# The deploy checks need only their part; every other mode may reach any of it (unit tests run sftp, Redis, clamd).
if [ "${1:-all}" = deploy ]; then bash tools/install-test-deps.sh deploy; else bash tools/install-test-deps.sh all; fi
export OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none
# shellcheck disable=SC2086
exec node --import tsx --test --test-concurrency=2 $files
