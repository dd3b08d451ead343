"""What a backend's health check raises; ``/__heartbeat__`` (``emailsvc.api.health``) runs them."""


class CheckFailed(Exception):
    """A backend answered, but not as a working one would; the message says how."""
