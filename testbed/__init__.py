"""Hardware-in-the-loop SDR testbed for multi-user semantic communication.

Layering (see docs/architecture.md): ``phy``, ``channels`` and ``systems`` are pure numpy/torch and never
import gnuradio; ``gr`` holds thin GNU Radio blocks; ``radios`` imports hardware libraries lazily.
"""
__version__ = "0.1.0"
