"""The one error type the command line turns into a one-line message (no traceback)."""


class MorphbiasError(ValueError):
    """A problem with the user's input (a file, a participant, a column, an argument), said in one line."""
