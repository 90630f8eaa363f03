"""The core layer: values, settings and text handling that every other layer shares.

Owns the one settings object (:mod:`.config`), submitter claims (:mod:`.claims`), findings and
the status they imply (:mod:`.findings`), format identification from magic bytes
(:mod:`.formats`), one-pass hashing (:mod:`.hashing`), machine resources (:mod:`.resources`) and
escaping of untrusted text for display (:mod:`.text`). It imports nothing else from
``verification``.
"""
