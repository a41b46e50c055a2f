"""The HTTP edge: the WSGI app and server, /metrics, /api/status and the card."""
