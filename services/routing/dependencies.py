"""routing's own dependency providers."""
from nameko.extensions import DependencyProvider

from closeloop_shared.config import AUTH_SIGNING_KEY_FILE, setting
from closeloop_shared.tokens import Signer


class TokenSigner(DependencyProvider):
    """The staff-token signer (routing alone holds the private key), or None when no key
    is configured: then nobody can log in, and login answers 503 saying so."""

    def setup(self):
        path = setting(self.container.config, AUTH_SIGNING_KEY_FILE)
        self.signer = Signer.from_file(path) if path else None

    def get_dependency(self, worker_ctx):
        return self.signer
