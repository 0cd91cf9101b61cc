"""Why routing's domain refuses an action. Pure."""


class ActionRefused(Exception):
    """The action does not fit the case's state (HTTP 409) or its input (HTTP 422).
    `allowed` names the actions the case's status does allow (in the 409's body)."""

    def __init__(self, code, message, field=None, allowed=None):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field
        self.allowed = allowed
