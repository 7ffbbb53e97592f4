"""``python -m glyph_course`` is ``glyph-course``."""
import sys

from .cli import main

sys.exit(main())
