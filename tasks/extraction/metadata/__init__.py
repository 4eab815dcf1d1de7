"""Page metadata read beside trafilatura in the extraction workers: dates with their precision
and provenance, title, authors and the outlet a story was taken from (`choose.py` has the order
of trust)."""
