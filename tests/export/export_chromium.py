"""Whether a Chromium for static export is here (``make test`` installs Debian's)."""

import pytest

from lensnb.export import ChromiumNotFoundError, chromium_path

try:
    chromium_path()
    HAVE_CHROMIUM = True
except ChromiumNotFoundError:
    HAVE_CHROMIUM = False

needs_chromium = pytest.mark.skipif(not HAVE_CHROMIUM,
                                    reason="no chromium: `make test` installs Debian's chromium")
