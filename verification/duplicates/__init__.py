"""The duplicates layer: near-duplicate search over perceptual hashes, pure and in memory.

Owns PDQ hash values and the vectorised index (:mod:`.index`), crop confirmation with ORB
features (:mod:`.crop`) and the matching of one item against the collection
(:mod:`.matching`). It may import only numpy/OpenCV and the core layer; the pipeline feeds it
hashes from the ledger and thumbnails from the store.
"""

from __future__ import annotations

from verification.duplicates.crop import CropMatch, confirm_crop
from verification.duplicates.index import DIHEDRAL_NAMES, PDQHash, PDQIndex
from verification.duplicates.matching import find_duplicates

__all__ = ["DIHEDRAL_NAMES", "CropMatch", "PDQHash", "PDQIndex", "confirm_crop", "find_duplicates"]
