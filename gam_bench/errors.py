"""The one exception type that means "the user gave bad input".

The CLI catches `UserError` once, prints its one-line message and exits 2, with no
traceback. Library code raises it with a message that names the file, the field and
the value wherever they are known.
"""


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""

    exit_code = 2
