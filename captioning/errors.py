"""The project's error types. The CLI prints any of them as one line and exits non-zero."""


class CaptioningError(Exception):
    """Base class: a problem with the user's input, files or settings (not a bug)."""


class DataError(CaptioningError):
    """A dataset, archive, download or manifest is missing, corrupt or unsafe."""


class RunError(CaptioningError):
    """A run folder is missing, locked, incompatible or corrupt."""
