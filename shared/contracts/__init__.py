"""Contracts between the parts of hybridrec: API schemas, the bundle, errors.

Training writes a bundle that the services read (:mod:`.bundle`, :mod:`.bundle_layout`);
the gateway and its clients speak :mod:`.public_v1`; the gateway speaks
:mod:`.internal_v1` to retrieval and ranking; operators speak :mod:`.admin_v1`. A breaking
change gets a ``v2`` module beside the ``v1`` one.
"""
