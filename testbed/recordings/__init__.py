"""Recordings of RX samples: SigMF files (the ``sigmf`` package) with one annotation per frame."""
