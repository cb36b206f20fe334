"""The one exception type that means "the user asked for something we cannot do".

The CLI turns it into a one-line message and exit code 2; anything else is a bug and
keeps its traceback.
"""


class BrushworkError(Exception):
    """Bad input or an impossible request, with a message meant for the user."""


class BrushworkWarning(UserWarning):
    """Something the user should know that does not stop the run (a mask resized to fit).
    The CLI prints it as one `brushwork: notice: ...` line; the API leaves it to `warnings`."""
