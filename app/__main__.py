"""``python -m app`` is the ``muxscope`` command."""

import sys

from app.entry import main

if __name__ == "__main__":
    sys.exit(main())
