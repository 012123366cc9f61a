"""What a command wrote to a pseudo-terminal, for tests of progress bars."""

from __future__ import annotations

import os


def read_until_closed(leader: int) -> bytes:
    """Everything written to the terminal whose leader end is ``leader``, until the command
    closes its end; the leader is closed then."""
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal's other end closed: the command is done
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return shown
