"""closeloop_shared/tokens.py: signed staff tokens (EdDSA JWT, key ring) and API keys."""
import base64
import hashlib
import hmac
import json
import stat
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from closeloop_shared import tokens
from closeloop_shared.tokens import InvalidCredential, KeyRing, Signer

# PyJWT checks `iat` against the wall clock: keep every token issued in the past.
NOW = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)
TTL = timedelta(minutes=30)
CLAIMS = {"sub": "sh-xh-mg", "name": "张丽", "role": "store_manager"}


def new_signer():
    pem, jwk = tokens.new_signing_key()
    return Signer.from_pem(pem), jwk


SIGNER, JWK = new_signer()
RING = KeyRing({"keys": [JWK]})


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj):
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def unb64json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def refused(token, now=NOW, ring=RING):
    with pytest.raises(InvalidCredential) as caught:
        ring.verify(token, now)
    return str(caught.value)


# -- signing and verifying ------------------------------------------------------------------

def test_sign_then_verify_round_trips_the_claims():
    token = SIGNER.sign(CLAIMS, NOW, TTL)
    claims = RING.verify(token, NOW + timedelta(minutes=1))
    assert {k: claims[k] for k in CLAIMS} == CLAIMS
    assert claims["iss"] == "closeloop"
    assert claims["iat"] == int(NOW.timestamp())
    assert claims["exp"] == int((NOW + TTL).timestamp())
    assert len(claims["jti"]) == 32


def test_the_header_names_the_algorithm_and_the_key():
    header = jwt.get_unverified_header(SIGNER.sign(CLAIMS, NOW, TTL))
    assert header["alg"] == "EdDSA" and header["kid"] == SIGNER.kid == JWK["kid"]


def test_every_token_has_its_own_id():
    assert SIGNER.sign(CLAIMS, NOW, TTL) != SIGNER.sign(CLAIMS, NOW, TTL)


def test_an_expired_token_is_refused_after_the_leeway():
    token = SIGNER.sign(CLAIMS, NOW, TTL)
    expiry = NOW + TTL
    assert RING.verify(token, expiry)["sub"] == "sh-xh-mg"
    assert RING.verify(token, expiry + timedelta(seconds=30))["sub"] == "sh-xh-mg"   # within the leeway
    assert "expired" in refused(token, expiry + timedelta(seconds=31))
    with pytest.raises(InvalidCredential):
        RING.verify(token, expiry + timedelta(seconds=1), leeway=timedelta(0))


def test_a_tampered_payload_is_refused():
    header, payload, signature = SIGNER.sign(CLAIMS, NOW, TTL).split(".")
    claims = unb64json(payload)
    for changed in (dict(claims, role="admin"), dict(claims, sub="gm-001"),
                    dict(claims, exp=claims["exp"] + 86400)):
        refused(".".join([header, b64json(changed), signature]))


def test_a_tampered_signature_is_refused():
    header, payload, signature = SIGNER.sign(CLAIMS, NOW, TTL).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 1
    refused(".".join([header, payload, b64(bytes(raw))]))
    refused(".".join([header, payload, ""]))


def test_a_token_of_an_unknown_key_is_refused():
    stranger, _ = new_signer()
    assert "unknown key" in refused(stranger.sign(CLAIMS, NOW, TTL))


def test_a_token_of_an_unknown_key_claiming_a_known_kid_is_refused():
    """Re-labelling a foreign signature with a trusted kid does not help."""
    stranger, _ = new_signer()
    stranger = Signer(stranger.private_key, SIGNER.kid)
    refused(stranger.sign(CLAIMS, NOW, TTL))


def test_a_token_without_kid_is_refused():
    token = jwt.encode(dict(CLAIMS, iss="closeloop", iat=int(NOW.timestamp()),
                            exp=int((NOW + TTL).timestamp())), SIGNER.private_key, algorithm="EdDSA")
    assert "unknown key" in refused(token)


def _unsigned(alg, kid=None, key=None):
    header = {"alg": alg, "typ": "JWT", "kid": kid or SIGNER.kid}
    payload = dict(CLAIMS, role="admin", iss="closeloop", iat=int(NOW.timestamp()),
                   exp=int((NOW + TTL).timestamp()))
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    signature = b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest()) if key else ""
    return f"{signing_input}.{signature}"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(alg):
    refused(_unsigned(alg))


def _public_key_forms():
    public = SIGNER.private_key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"raw": raw, "pem": pem, "jwk x": JWK["x"].encode(), "jwk": json.dumps(JWK).encode()}


@pytest.mark.parametrize("form", sorted(_public_key_forms()))
def test_hs256_signed_with_the_public_key_is_refused(form):
    """The classic algorithm confusion: HMAC keyed with the (public) verification key."""
    refused(_unsigned("HS256", key=_public_key_forms()[form]))


@pytest.mark.parametrize("missing", ["sub", "exp", "iat"])
def test_a_token_missing_a_required_claim_is_refused(missing):
    payload = dict(CLAIMS, iss="closeloop", iat=int(NOW.timestamp()), exp=int((NOW + TTL).timestamp()))
    del payload[missing]
    token = jwt.encode(payload, SIGNER.private_key, algorithm="EdDSA", headers={"kid": SIGNER.kid})
    refused(token)


def test_a_token_of_another_issuer_is_refused():
    payload = dict(CLAIMS, iss="someone-else", iat=int(NOW.timestamp()), exp=int((NOW + TTL).timestamp()))
    refused(jwt.encode(payload, SIGNER.private_key, algorithm="EdDSA", headers={"kid": SIGNER.kid}))


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x", "...", "clk_abc_def"])
def test_garbage_is_refused_not_crashed_on(garbage):
    refused(garbage)


@pytest.mark.parametrize("kid", [["x"], {"a": 1}, 5, None])
def test_a_kid_that_is_not_a_string_is_refused(kid):
    header, payload, signature = SIGNER.sign(CLAIMS, NOW, TTL).split(".")
    refused(".".join([b64json({"alg": "EdDSA", "typ": "JWT", "kid": kid}), payload, signature]))


def test_a_token_issued_by_a_signer_whose_clock_runs_ahead_is_accepted_within_the_leeway():
    ahead = datetime.now(timezone.utc) + timedelta(seconds=5)
    token = SIGNER.sign(CLAIMS, ahead, TTL)
    assert RING.verify(token, ahead)["sub"] == "sh-xh-mg"


# -- keys and rotation ------------------------------------------------------------------------

def test_public_jwk_kid_is_the_rfc_7638_thumbprint():
    """RFC 8037, appendix A.2/A.3: the Ed25519 example key and its thumbprint."""
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    public = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "="))
    jwk = tokens.public_jwk(public)
    assert jwk == {"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA", "use": "sig",
                   "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"}


def test_the_public_jwk_holds_no_private_part():
    assert set(JWK) == {"kty", "crv", "x", "alg", "use", "kid"}


def test_signer_from_pem_names_the_key_by_its_thumbprint():
    pem = SIGNER.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())
    assert Signer.from_pem(pem).kid == SIGNER.kid == tokens.public_jwk(SIGNER.private_key.public_key())["kid"]


def test_rotation_two_keys_verify_both_then_the_old_one_is_dropped():
    old_signer, old_jwk = new_signer()
    new_signer_, new_jwk = new_signer()
    old_token, new_token = old_signer.sign(CLAIMS, NOW, TTL), new_signer_.sign(CLAIMS, NOW, TTL)
    during = KeyRing({"keys": [old_jwk, new_jwk]})
    assert during.verify(old_token, NOW)["sub"] == during.verify(new_token, NOW)["sub"] == "sh-xh-mg"
    after = KeyRing({"keys": [new_jwk]})
    assert after.verify(new_token, NOW)["sub"] == "sh-xh-mg"
    assert "unknown key" in refused(old_token, ring=after)


def test_write_key_pair_adds_to_the_jwks_and_keeps_the_private_key_private(tmp_path):
    private, jwks = tmp_path / "keys" / "signing.pem", tmp_path / "jwks.json"
    first = tokens.write_key_pair(private, jwks)
    first_signer = Signer.from_file(private)
    assert first_signer.kid == first
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    second = tokens.write_key_pair(private, jwks)   # rotation: a new signing key
    assert second != first
    assert [k["kid"] for k in json.loads(jwks.read_text())["keys"]] == [first, second]
    assert all("d" not in k for k in json.loads(jwks.read_text())["keys"])  # no private part in the JWKS
    ring = KeyRing.from_file(jwks)
    assert ring.verify(first_signer.sign(CLAIMS, NOW, TTL), NOW)["sub"] == "sh-xh-mg"
    assert ring.verify(Signer.from_file(private).sign(CLAIMS, NOW, TTL), NOW)["sub"] == "sh-xh-mg"


# -- API keys ------------------------------------------------------------------------------------

def test_a_new_api_key_is_shown_once_as_clk_key_id_secret():
    key = tokens.new_api_key()
    assert len(key.key_id) == 16 and int(key.key_id, 16) >= 0
    assert len(key.secret) >= 43  # 32 random bytes, base64url
    assert key.presented == f"clk_{key.key_id}_{key.secret}"
    assert tokens.looks_like_api_key(key.presented)
    assert tokens.new_api_key() != key


def test_parse_then_match_the_stored_digest():
    key = tokens.new_api_key()
    parsed = tokens.parse_api_key(key.presented)
    assert parsed == key
    assert key.digest == hashlib.sha256(key.secret.encode()).hexdigest() == tokens.secret_digest(key.secret)
    assert tokens.api_key_matches(parsed, key.digest)
    assert not tokens.api_key_matches(tokens.new_api_key(), key.digest)
    assert key.secret not in key.digest


def test_a_wrong_secret_for_a_known_key_id_does_not_match():
    key = tokens.new_api_key()
    forged = tokens.parse_api_key(f"clk_{key.key_id}_{key.secret[:-1]}x")
    assert forged.key_id == key.key_id and not tokens.api_key_matches(forged, key.digest)


@given(key_id=st.text("0123456789abcdef", min_size=1, max_size=16),
       secret=st.text("ABCxyz0189-_", min_size=1, max_size=50))
def test_secrets_with_underscores_survive_the_round_trip(key_id, secret):
    key = tokens.ApiKey(key_id, secret)
    assert tokens.parse_api_key(key.presented) == key


@pytest.mark.parametrize("credential", [
    "", "clk", "clk_", "clk_abc", "clk_abc_", "clk__secret", "xyz_abc_def", "CLK_abc_def", "_abc_def",
])
def test_malformed_api_keys_are_refused(credential):
    with pytest.raises(InvalidCredential, match="malformed"):
        tokens.parse_api_key(credential)


def test_what_looks_like_an_api_key():
    assert tokens.looks_like_api_key("clk_a_b")
    assert not tokens.looks_like_api_key(SIGNER.sign(CLAIMS, NOW, TTL))
    assert not tokens.looks_like_api_key("clkx_a_b")


def test_is_expired():
    assert not tokens.is_expired(None, NOW)
    assert tokens.is_expired(NOW, NOW)
    assert tokens.is_expired(NOW - timedelta(seconds=1), NOW)
    assert not tokens.is_expired(NOW + timedelta(seconds=1), NOW)
