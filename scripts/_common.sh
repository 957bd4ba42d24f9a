# Shared by scripts/setup, scripts/test and scripts/demo: paths and the
# development defaults. Sourced, not run.
#
# Development defaults (override any of them in the environment):
#   PKCS11_MODULE       Debian's SoftHSM library
#   PKCS11_TOKEN_LABEL  powerauth-dev
#   PKCS11_USER_PIN     1234       (development only; a real HSM has its own)
#   PKCS11_SO_PIN       12345678   (development only; used once, to create the token)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
VAR="$ROOT/var"

export PKCS11_MODULE="${PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
export PKCS11_TOKEN_LABEL="${PKCS11_TOKEN_LABEL:-powerauth-dev}"
export PKCS11_USER_PIN="${PKCS11_USER_PIN:-1234}"
export PKCS11_SO_PIN="${PKCS11_SO_PIN:-12345678}"
# The project's own SoftHSM configuration, so that its token lives under var/
# and never in the system-wide token folder.
export SOFTHSM2_CONF="${SOFTHSM2_CONF:-$VAR/softhsm/softhsm2.conf}"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
