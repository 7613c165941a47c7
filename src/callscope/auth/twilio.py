"""Twilio's request signature: `X-Twilio-Signature` is base64(HMAC-SHA1(auth token, URL)),
where the URL is the one Twilio requested (a WebSocket upgrade is a GET: no body parameters
are appended). Pure."""

import base64
import hashlib
import hmac


def twilio_signature(auth_token: str, url: str) -> str:
    digest = hmac.new(auth_token.encode(), url.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def is_valid_twilio_signature(auth_token: str, url: str, signature: str) -> bool:
    return hmac.compare_digest(twilio_signature(auth_token, url).encode(), signature.encode())
