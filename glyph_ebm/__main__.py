"""``python -m glyph_ebm ...`` is the same as the ``glyph-ebm`` command."""
import sys

from .cli import main

sys.exit(main())
