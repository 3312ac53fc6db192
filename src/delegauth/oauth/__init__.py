"""The OAuth 2.0 / OpenID Connect authorization server, on Authlib.

One module per protocol feature: grants.py (RFC 6749 code with RFC 7636 PKCE,
refresh, client credentials), rfc8693.py (token exchange), rfc7662.py
(introspection), rfc7009.py (revocation), discovery.py (RFC 8414 and OIDC
discovery). server.py wires them into an Authlib AuthorizationServer and is the
thin adapter between Falcon requests and Authlib's (status, body, headers).
"""
