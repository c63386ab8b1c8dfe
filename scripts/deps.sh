#!/bin/sh
# Install the Debian packages modelpack's build and tests need, if missing.
# Called by `make deps` (and so by `make test` and `make demo`); needs root
# only when something is actually missing.
set -e
need=""
for p in "$@"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
[ -z "$need" ] && exit 0
echo "deps: installing$need"
if [ "$(id -u)" != 0 ]; then
  echo "deps: not root; run: sudo apt-get install -y$need" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $need >/dev/null
