"""The interface layer: the ``evidence`` command.

Owns argument parsing and exit codes (:mod:`.main`), what is printed (:mod:`.output`), the
feature commands (:mod:`.fixity`, :mod:`.exports`, registered through :mod:`.extensions`) and the
demo (:mod:`.demo`). It may import every layer below; nothing imports it.
"""
