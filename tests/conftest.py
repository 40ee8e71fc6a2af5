"""Settings for the whole suite."""

from __future__ import annotations

import signal

# Tests send Ctrl-C (SIGINT) to the programs they start and check that rollbacks run and nothing is
# left behind.  A shell that starts `make test` in the background (`make test &`, nohup, some CI
# runners) starts it with SIGINT ignored, and an ignored signal stays ignored across exec: the
# programs under test would never see the Ctrl-C.  Handling it here (Python's default handler)
# means children start with the default disposition again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
