"""Credentials as bytes: signed staff tokens (JWT, EdDSA) and integration API keys.

Staff tokens are signed by routing (which owns the organisation and the accounts) with
an Ed25519 private key and verified by every service with the public keys alone, so no
service calls another per request and none but routing can mint a token. Rotation:
publish the new public key beside the old one (two keys valid), switch routing's signing
key, drop the old public key once the last token it signed has expired.

API keys are random secrets shown once: `clk_<key id>_<secret>`. Only a SHA-256 digest of
the secret is stored (a 256-bit random secret needs no slow KDF; passwords do, and get
argon2). Pure: no nameko, no pymongo.
"""
import base64
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

ALGORITHM = "EdDSA"
ISSUER = "closeloop"
API_KEY_PREFIX = "clk"


class InvalidCredential(Exception):
    """Missing, malformed, tampered, expired or revoked: the caller is not authenticated."""


# -- signing keys ---------------------------------------------------------------------

def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(public_key):
    """The public key as a JWK, with its RFC 7638 thumbprint as `kid`."""
    jwk = json.loads(OKPAlgorithm.to_jwk(public_key))
    canonical = json.dumps({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]},
                           separators=(",", ":"), sort_keys=True)
    return {"kty": jwk["kty"], "crv": jwk["crv"], "x": jwk["x"], "alg": ALGORITHM, "use": "sig",
            "kid": _b64(hashlib.sha256(canonical.encode()).digest())}


def new_signing_key():
    """(private key PEM bytes, its public JWK)."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return pem, public_jwk(private.public_key())


def write_key_pair(private_path, jwks_path):
    """Write a new signing key to `private_path` (mode 600) and add its public key to
    the JWKS at `jwks_path` (created if missing), keeping the keys already there:
    during a rotation both the old and the new key verify."""
    pem, jwk = new_signing_key()
    private_path, jwks_path = Path(private_path), Path(jwks_path)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    private_path.write_bytes(pem)
    private_path.chmod(0o600)
    keys = json.loads(jwks_path.read_text())["keys"] if jwks_path.exists() else []
    jwks_path.write_text(json.dumps({"keys": [*keys, jwk]}, indent=2) + "\n")
    return jwk["kid"]


@dataclass(frozen=True)
class Signer:
    private_key: Ed25519PrivateKey
    kid: str

    @classmethod
    def from_pem(cls, pem):
        private = serialization.load_pem_private_key(pem, password=None)
        return cls(private, public_jwk(private.public_key())["kid"])

    @classmethod
    def from_file(cls, path):
        return cls.from_pem(Path(path).read_bytes())

    def sign(self, claims, now, ttl):
        payload = dict(claims, iss=ISSUER, iat=int(now.timestamp()),
                       exp=int((now + ttl).timestamp()), jti=uuid.uuid4().hex)
        return jwt.encode(payload, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid})


class KeyRing:
    """The public keys every service verifies tokens with (a JWKS document)."""

    def __init__(self, jwks):
        self.keys = {jwk["kid"]: OKPAlgorithm.from_jwk(json.dumps(jwk)) for jwk in jwks["keys"]}

    @classmethod
    def from_file(cls, path):
        return cls(json.loads(Path(path).read_text()))

    def verify(self, token, now, leeway=timedelta(seconds=30)):
        """The token's claims, or InvalidCredential. Only EdDSA with a known kid passes
        (no `alg: none`, no HMAC-with-the-public-key confusion)."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.keys.get(kid)
            if key is None:
                raise InvalidCredential("token signed by an unknown key")
            # Times are checked against `now` below, with the leeway, not PyJWT's clock.
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "iss"], "verify_exp": False,
                                         "verify_iat": False, "verify_nbf": False})
        except jwt.PyJWTError as exc:
            raise InvalidCredential(f"invalid token: {type(exc).__name__}") from None
        if not isinstance(claims["exp"], (int, float)) or not isinstance(claims["iat"], (int, float)):
            raise InvalidCredential("invalid token: exp and iat must be numbers")
        if claims["exp"] + leeway.total_seconds() < now.timestamp():
            raise InvalidCredential("token expired")
        if claims["iat"] - leeway.total_seconds() > now.timestamp():
            raise InvalidCredential("token issued in the future")
        return claims


# -- API keys -------------------------------------------------------------------------

@dataclass(frozen=True)
class ApiKey:
    key_id: str
    secret: str

    @property
    def presented(self):
        """What the integration sends, once: `clk_<key id>_<secret>`."""
        return f"{API_KEY_PREFIX}_{self.key_id}_{self.secret}"

    @property
    def digest(self):
        return secret_digest(self.secret)


def new_api_key():
    return ApiKey(key_id=secrets.token_hex(8), secret=secrets.token_urlsafe(32))


def secret_digest(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_api_key(credential):
    return credential.startswith(API_KEY_PREFIX + "_")


def parse_api_key(credential):
    prefix, _, rest = credential.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != API_KEY_PREFIX or not key_id or not secret:
        raise InvalidCredential("malformed API key")
    return ApiKey(key_id, secret)


def api_key_matches(presented, stored_digest):
    return hmac.compare_digest(presented.digest, stored_digest)


def is_expired(expires_at, now: datetime):
    return expires_at is not None and expires_at <= now
