# Shared by the quick-start scripts. Sourced, not run.

# The Debian 12 packages the build, the tests, the bench and the demo need
# (mpop, fetchmail and curl are the bench's peers).
POP3_PACKAGES="g++ clang libclang-rt-14-dev meson ninja-build pkg-config cmake python3
  libboost1.81-dev libssl-dev openssl doctest-dev dovecot-core dovecot-pop3d
  mpop fetchmail curl"

# apt-get install with service starts denied (policy-rc.d exit 101), so
# that Debian's packaged Dovecot never starts: the tests start their own.
# The policy file is removed again if this put it there.
apt_install() {  # apt_install [SUDO] PACKAGE...
    sudo_cmd=$1; shift
    made_policy=false
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null
        $sudo_cmd chmod 755 /usr/sbin/policy-rc.d
        made_policy=true
    fi
    status=0
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" || status=$?
    if [ "$made_policy" = true ]; then $sudo_cmd rm -f /usr/sbin/policy-rc.d; fi
    return $status
}

# Installs whatever of POP3_PACKAGES is missing: as root directly, otherwise
# through sudo. Does nothing (and needs no root) when all are present.
ensure_packages() {
    missing=""
    for p in $POP3_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "Installing:$missing"
    if [ "$(id -u)" = 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: missing packages ($missing) and neither root nor sudo to install them" >&2
        exit 2
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    # shellcheck disable=SC2086
    apt_install "$SUDO" $missing
}

# meson setup that also works on an existing build directory.
setup_build() {
    dir=$1; shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi
}
