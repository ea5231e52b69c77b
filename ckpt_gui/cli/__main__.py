"""``python -m ckpt_gui.cli``: the same ``main`` as the ``ckpt-inspect`` entry point."""
import sys

from . import main

sys.exit(main())
