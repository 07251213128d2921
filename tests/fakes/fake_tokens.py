"""Access tokens shared by the fake Entra (which issues them) and the fake
Office 365 (which checks them in AUTH XOAUTH2).

A token is "<payload>.<signature>" where payload is base64url(JSON) with
  tid (tenant), appid (client id), mbx (mailbox for delegated tokens or "" for
  app-only), scp (scope string), iat, exp, jti (unique id)
and signature is base64url(HMAC-SHA256(signing key, payload)). The key is the
text of entra-signing.key made by make_test_ca.sh. Revocation is by jti: the
fake Office 365 refuses tokens whose jti is listed in its state's revoked file.
Real Entra tokens are JWTs; these are deliberately not, so that no code can
depend on parsing an access token (Microsoft says they are opaque to clients).
"""
import base64
import hashlib
import hmac
import json
import os
import time


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def load_key(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read().strip()


def issue(key: bytes, tenant: str, client_id: str, scope: str, lifetime: int,
          mailbox: str = "") -> dict:
    now = int(time.time())
    claims = {"tid": tenant, "appid": client_id, "mbx": mailbox, "scp": scope,
              "iat": now, "exp": now + lifetime, "jti": _b64(os.urandom(12))}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return {"token": payload + "." + sig, "claims": claims}


def verify(key: bytes, token: str):
    """Returns the claims, or None when the signature is bad or it expired."""
    try:
        payload, sig = token.split(".")
        want = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(want, sig):
            return None
        claims = json.loads(_unb64(payload))
        if claims["exp"] <= int(time.time()):
            return None
        return claims
    except Exception:
        return None
