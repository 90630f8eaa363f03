"""Evidence verification: preserve, hash, analyse and keep a chain of custody for photos and videos.

The library has no Airflow import; DAGs, the review plugin and the ``evidence`` CLI call it.
"""

from __future__ import annotations

__version__ = "0.1.0"
