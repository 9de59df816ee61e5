"""Verifies an access token as an independent resource server would: only from the authorization
server's metadata (RFC 8414) and the JWKS it points to, with PyJWT.

Usage: verify.py ISSUER AUDIENCE TOKEN. Prints the claims as JSON, or exits 1 naming the error.
"""

import json
import sys
import urllib.request

import jwt


def main() -> int:
    issuer, audience, token = sys.argv[1:4]
    with urllib.request.urlopen(issuer + "/.well-known/oauth-authorization-server") as answer:
        metadata = json.load(answer)
    if metadata["issuer"] != issuer:
        print("the metadata names another issuer", file=sys.stderr)
        return 1
    keys = jwt.PyJWKClient(metadata["jwks_uri"])
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != "at+jwt":
            raise jwt.InvalidTokenError("typ is not at+jwt")
        key = keys.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["ES256"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti", "client_id"]},
        )
    except jwt.PyJWTError as err:
        print(f"refused: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"header": header, "claims": claims}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
