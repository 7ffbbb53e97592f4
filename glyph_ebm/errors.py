"""User-facing errors.

Every problem a user can fix themselves (a wrong path, a corrupt image, an unknown option, a
checkpoint that does not fit) is raised as :class:`GlyphEBMError`. Its message is one line that
names the problem and what to do about it. The command-line entry points catch it, print
``error: <message>`` and exit with status 2, so users never see a deep traceback for their own
mistakes.
"""


class GlyphEBMError(Exception):
    """A problem with the user's input, stated in one actionable line."""


class DataError(GlyphEBMError):
    """The data folder or one of its images cannot be used."""


class ConfigError(GlyphEBMError):
    """An option, profile or mode has a value we do not know."""


class CheckpointError(GlyphEBMError):
    """A checkpoint cannot be read or does not fit the current model/data."""
