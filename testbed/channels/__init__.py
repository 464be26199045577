"""Channel models: one definition (:class:`ChannelSpec`), a numpy face, a differentiable torch
face and a streaming emulator for the GNU Radio channel block (DESIGN.md "Topologies").

Importing this package registers the models ``awgn``, ``rayleigh`` and ``rician`` as channel
factories in :mod:`testbed.registry`. The torch face is imported on demand
(``testbed.channels.torch_face``) so numpy-only processes such as the emulator need no torch.
"""
from testbed.channels.realization import Realization, draw
from testbed.channels.spec import MODELS, ChannelSpec
from testbed.channels.stream import ChannelMatrixEmulator, LinkImpairment

__all__ = ["MODELS", "ChannelMatrixEmulator", "ChannelSpec", "LinkImpairment", "Realization", "draw"]
