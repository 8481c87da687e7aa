#!/usr/bin/env bash
# Installs the pinned Azurite (Azure Blob Storage emulator) that render-pod's integration test
# `tests/azurite.rs` runs against. Needs Node.js >= 18 and npm with registry access.
#
#   render-pod/tests/azurite.sh            # installs into ~/.cache/tessera/azurite
#   TESSERA_AZURITE_DIR=/opt/azurite render-pod/tests/azurite.sh
#
# The test looks in the same place (TESSERA_AZURITE_DIR, default ~/.cache/tessera/azurite) and
# fails, not skips, when Azurite is missing.
set -euo pipefail

AZURITE_VERSION=3.35.0
DIR="${TESSERA_AZURITE_DIR:-$HOME/.cache/tessera/azurite}"
BIN="$DIR/node_modules/.bin/azurite-blob"

if [[ -x "$BIN" ]] && [[ "$("$BIN" --version 2>/dev/null)" == "$AZURITE_VERSION" ]]; then
  echo "azurite $AZURITE_VERSION already installed in $DIR"
  exit 0
fi
command -v npm >/dev/null || { echo "npm not found: install Node.js >= 18 first" >&2; exit 1; }
mkdir -p "$DIR"
npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION"
echo "azurite $("$BIN" --version) installed: $BIN"
