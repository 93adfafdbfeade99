#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests, then the end-to-end checks with the official
# OpenAI and Anthropic Python SDKs (set up in a virtualenv on first use).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test -j2 "$@"
