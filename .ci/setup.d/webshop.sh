#!/usr/bin/env bash
# WebShop's tests need the `webshop` extra (rapidfuzz for the reward's fuzzy matching, PyStemmer for
# the search engine) and, for the browser test, Debian's chromium and chromium-driver.
# Runs inside the CI virtualenv that .ci/run activated; idempotent.
set -euo pipefail

pip install -q -e ".[webshop]"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
    apt-get install -y -q chromium chromium-driver >/dev/null \
      || echo "webshop setup: chromium could not be installed; the browser test will skip"
  else
    echo "webshop setup: no chromium and no root apt-get; the browser test will skip"
  fi
fi
