"""hybridrec's common package: what training and serving both need.

Schemas, settings helpers, the artifact bundle, feature encoding, custom Keras
layers, the BERT text encoder, ANN index wrappers and HTTP clients live here.
Nothing heavy happens at import time.
"""
