"""Durable and cached state the services share: Redis when configured, local files otherwise."""
