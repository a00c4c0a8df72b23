"""The one exception type our commands raise for a user's mistake: printed as one line, no traceback."""


class LocalflowError(Exception):
    """Something the user can fix; the message says what is wrong and how to fix it."""
