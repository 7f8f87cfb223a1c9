"""Model numerics that training and serving share, so both compute the same thing.

Nothing here knows about HTTP: no FastAPI, no uvicorn, no :mod:`shared.serving`.
"""
