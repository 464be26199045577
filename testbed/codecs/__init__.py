"""Classical source codecs of the digital baseline; importing this package registers them
under the registry kind "codec" (``hevc``, ``jpeg2000``)."""
from testbed.codecs import image_codec
from testbed.codecs.image_codec import HevcCodec, ImageCodec, Jpeg2000Codec, budget_bytes

__all__ = ["HevcCodec", "ImageCodec", "Jpeg2000Codec", "budget_bytes", "image_codec"]
