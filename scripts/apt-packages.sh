#!/usr/bin/env bash
# Install Debian packages that tests need, once: sourced by the install-*.sh scripts.
#   apt_packages WHO WHAT_SKIPS PACKAGE...
# Does nothing when every package is installed. Needs root and apt-get: in CI (CI=true) it
# fails without them; elsewhere it says why it skipped and what will skip with it.

apt_packages() {
    local who=$1 skips=$2
    shift 2
    local installed
    installed=$(dpkg-query --show --showformat='${db:Status-Status}\n' "$@" 2>/dev/null \
        | grep -cx installed || true)
    if ((installed == $#)); then
        return 0
    fi
    if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
        local reason="installing $* needs root and apt-get"
        if [[ ${CI:-} == true ]]; then
            echo "$who: $reason" >&2
            return 1
        fi
        echo "$who: skipped: $reason; $skips will skip" >&2
        return 0
    fi
    echo "$who: installing $*"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
