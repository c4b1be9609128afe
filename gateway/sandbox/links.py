"""Signed download links: ``/files/<token>.<ext>?expires=<ts>&sig=<hex>``.

The token is the job id in URL-safe base64; the signature is an HMAC-SHA256 over token,
extension and expiry with a per-app random secret, so links cannot be forged or extended. Pure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

FILE_EXTENSIONS: tuple[str, ...] = ("mp4", "png")


class LinkSigner:
    """Makes and checks signed file links with one secret."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def _sign(self, token: str, ext: str, expires: int) -> str:
        message = f"{token}.{ext}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def path(self, job_id: str, ext: str, expires: int) -> str:
        """The absolute path plus query of a link to the job's ``ext`` file."""
        token = base64.urlsafe_b64encode(job_id.encode()).rstrip(b"=").decode()
        return f"/files/{token}.{ext}?expires={expires}&sig={self._sign(token, ext, expires)}"

    def verify(self, token: str, ext: str, expires: str | None, sig: str | None) -> tuple[str, int]:
        """The job id and expiry a link names; ``ValueError`` if it is malformed or forged."""
        if ext not in FILE_EXTENSIONS or expires is None or sig is None:
            raise ValueError("malformed link")
        try:
            expires_at = int(expires)
            job_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise ValueError("malformed link") from exc
        if not hmac.compare_digest(sig.encode(), self._sign(token, ext, expires_at).encode()):
            raise ValueError("bad signature")
        return job_id, expires_at
