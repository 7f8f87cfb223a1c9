"""Versioned request/response models shared by the services and the client.

Import from ``shared.schemas.v1``; a breaking change gets a ``v2`` module beside it.
"""
