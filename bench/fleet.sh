#!/usr/bin/env bash
# Fleet spread on a virtual clock (bench/examples/fleet.rs): the renewal times of 10,000
# hosts whose certificates were issued in the same minute, with and without jitter, and the
# retry spread after a one-hour connector outage. Pure computation with the daemon's
# schedule and backoff functions.
#
# Usage: bench/fleet.sh   (HOSTS, default 10000)
source "$(dirname "$0")/lib.sh"

build
echo "### Fleet spread (virtual clock)"
echo
"$RELEASE/examples/fleet" "${HOSTS:-10000}"
