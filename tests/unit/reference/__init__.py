"""The PDQ index and dedupe step as they were before the one-pass query (commit 128163b), kept
verbatim as the oracle of the equivalence tests: the new code must give the same answers."""
